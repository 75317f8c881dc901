import math

import pytest
import torch
import torch.nn.functional as F

from charter.train.losses import soft_dpo_loss


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_soft_label_loss_matches_a_hand_computation():
    # h = (-10 - -11) - (-12 - -11) = 2; beta*h = 1; eps = 1 - 0.8 = 0.2
    loss, margin = soft_dpo_loss(_t(-10.0), _t(-12.0), _t(-11.0), _t(-11.0), beta=0.5, epsilon=_t(0.2))
    sig = 1 / (1 + math.exp(-1.0))
    expected = -0.8 * math.log(sig) - 0.2 * math.log(1 - sig)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.51326, abs=1e-5)
    assert margin.item() == pytest.approx(1.0)


def test_hard_labels_are_standard_dpo_and_eps_is_per_example():
    pc, pr, rc, rr = _t(-5.0, -7.0), _t(-6.0, -6.5), _t(-5.5, -6.0), _t(-5.5, -6.0)
    hard, _ = soft_dpo_loss(pc, pr, rc, rr, beta=0.1, epsilon=0.0)
    h = (pc - rc) - (pr - rr)
    assert torch.allclose(hard, -F.logsigmoid(0.1 * h))
    soft, _ = soft_dpo_loss(pc, pr, rc, rr, beta=0.1, epsilon=_t(0.0, 0.4))
    assert soft[0] == hard[0] and soft[1] != hard[1]


def test_a_coin_flip_label_pulls_towards_no_preference():
    # With eps = 0.5 the loss is symmetric in h: its gradient at h = 0 vanishes.
    h = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    loss, _ = soft_dpo_loss(
        h,
        torch.zeros(1, dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
        beta=1.0,
        epsilon=0.5,
    )
    loss.sum().backward()
    assert h.grad.abs().item() < 1e-12
    # A confident label pushes h up (negative gradient).
    h2 = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    loss2, _ = soft_dpo_loss(h2, *(torch.zeros(1, dtype=torch.float64),) * 3, beta=1.0, epsilon=0.1)
    loss2.sum().backward()
    assert h2.grad.item() < 0

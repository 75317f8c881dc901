"""The soft-label DPO loss.

Conservative DPO (Mitchell 2023, "cDPO") treats a preference label as correct with probability
1 - eps:  L = -(1 - eps) log sigma(beta * h) - eps log sigma(-beta * h),  with
h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)). Charter sets eps per example to
1 - p_chosen, the judge's own probability that the chosen answer is better, so confident labels
push hard and near-coin-flips barely push. Hard labels are eps = 0 (standard DPO).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    epsilon: torch.Tensor | float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example loss and the implicit reward margin beta*h. Inputs are summed log-probs."""
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    eps = torch.as_tensor(epsilon, dtype=h.dtype, device=h.device)
    loss = -(1.0 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    return loss, beta * h.detach()

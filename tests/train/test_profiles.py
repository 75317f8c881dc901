import math

import pytest
import torch

from charter.train.profiles import AbsorptionProfiler, centroid, entropy_bits, plot_profiles


def test_entropy_of_one_block_and_of_a_uniform_spread():
    assert entropy_bits([0, 0, 5.0, 0]) == 0.0
    assert entropy_bits([1.0] * 8) == pytest.approx(3.0)
    assert entropy_bits([2.0] * 30) == pytest.approx(math.log2(30))
    assert entropy_bits([0, 0]) == 0.0
    assert 0 < entropy_bits([3.0, 1.0]) < 1


def test_centroid_is_mean_depth_as_a_fraction():
    assert centroid([1.0, 0, 0, 0, 0]) == 0.0
    assert centroid([0, 0, 0, 0, 1.0]) == 1.0
    assert centroid([1.0] * 5) == pytest.approx(0.5)
    assert centroid([0, 0, 0, 1.0, 1.0]) == pytest.approx(0.875)


class _Blocks(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(3, 3, bias=False) for _ in range(n))

    def forward(self, x, upto):
        for layer in self.layers[:upto]:
            x = layer(x)
        return x.sum()


def test_profiler_attributes_gradients_to_the_active_group_and_splits_shared_groups():
    torch.manual_seed(0)
    m = _Blocks(4)
    prof = AbsorptionProfiler(m, 4)
    m.layers[0].weight.requires_grad_(False)  # like the router switching a block off
    prof.begin("a", 2)
    m(torch.ones(1, 3), upto=4).backward()
    prof.begin("a+b", 1)
    m(torch.ones(1, 3), upto=4).backward()
    rep = prof.report()
    a, b = rep["principles"]["a"], rep["principles"]["b"]
    assert a["distribution"][0] == 0.0 and b["distribution"][0] == 0.0
    assert a["examples"] == 3 and b["examples"] == 1
    # same gradients twice: "a" gets all of the first and half of the second, "b" the other half
    assert a["total_mass"] == pytest.approx(3 * b["total_mass"], rel=1e-9)
    assert a["distribution"] == pytest.approx(b["distribution"])
    assert sum(a["distribution"]) == pytest.approx(1.0)
    # state round-trips (checkpoints)
    prof2 = AbsorptionProfiler(_Blocks(4), 4)
    prof2.load_state_dict(prof.state_dict())
    assert prof2.report()["principles"] == rep["principles"]


def test_heatmap_is_written(tmp_path):
    report = {
        "n_blocks": 3,
        "principles": {"p": {"distribution": [0.2, 0.3, 0.5], "entropy_bits": 1.4, "centroid_depth": 0.65}},
    }
    path = plot_profiles(report, tmp_path / "profiles.png")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

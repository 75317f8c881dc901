"""Training: SFT and DPO with TRL, depth-selective gradient routing, absorption profiles."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.core.lazy import lazy_attributes
from charter.train.config import DPOTrainConfig, SFTTrainConfig, TrainConfig

if TYPE_CHECKING:
    from charter.train.losses import soft_dpo_loss
    from charter.train.profiles import AbsorptionProfiler, centroid, entropy_bits
    from charter.train.routing import GradientRouter, RoutingPlan
    from charter.train.run import TrainingRun

# These import torch: loaded on first use, so importing a config (the CLI does, to build its
# options) stays light.
_LAZY = {
    "soft_dpo_loss": "charter.train.losses",
    "AbsorptionProfiler": "charter.train.profiles",
    "centroid": "charter.train.profiles",
    "entropy_bits": "charter.train.profiles",
    "GradientRouter": "charter.train.routing",
    "RoutingPlan": "charter.train.routing",
    "TrainingRun": "charter.train.run",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "AbsorptionProfiler",
    "DPOTrainConfig",
    "GradientRouter",
    "RoutingPlan",
    "SFTTrainConfig",
    "TrainConfig",
    "TrainingRun",
    "centroid",
    "entropy_bits",
    "soft_dpo_loss",
]

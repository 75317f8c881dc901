"""Training: SFT and DPO with TRL, depth-selective gradient routing, absorption profiles."""

from charter.train.losses import soft_dpo_loss
from charter.train.profiles import AbsorptionProfiler, centroid, entropy_bits
from charter.train.routing import GradientRouter, RoutingPlan
from charter.train.run import DPOTrainConfig, SFTTrainConfig, TrainConfig, TrainingRun

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

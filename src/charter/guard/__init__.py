"""Constitutional classifiers: synthetic data from the constitution, a two-stage cascade (embedding
head or hidden-state probe, then an exchange classifier), streaming output checks, evaluation and
training-data filtering."""

from __future__ import annotations

from typing import TYPE_CHECKING

from charter.core.lazy import lazy_attributes
from charter.guard.config import GuardTrainConfig, SynthConfig

if TYPE_CHECKING:
    from charter.guard.model import Guard, check_output_stream
    from charter.guard.training import GuardTrainer

# The classifiers import torch: loaded on first use, so importing a config (the CLI does, to build
# its options) stays light.
_LAZY = {
    "Guard": "charter.guard.model",
    "check_output_stream": "charter.guard.model",
    "GuardTrainer": "charter.guard.training",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = ["Guard", "GuardTrainConfig", "GuardTrainer", "SynthConfig", "check_output_stream"]

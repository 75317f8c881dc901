"""Constitutional classifiers: synthetic data from the constitution, a two-stage cascade (embedding
head or hidden-state probe, then an exchange classifier), streaming output checks, evaluation and
training-data filtering."""

from charter.guard.model import Guard, check_output_stream
from charter.guard.training import GuardTrainConfig, GuardTrainer

__all__ = ["Guard", "GuardTrainConfig", "GuardTrainer", "check_output_stream"]

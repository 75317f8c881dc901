"""Evaluation: attack success, over-refusal, helpfulness, jailbreaks, and comparison reports."""

from charter.core.refusal import RefusalDetector
from charter.core.stats import bradley_terry_elo, wilson
from charter.evals.run import EvalConfig, EvalRun, summarize

__all__ = ["EvalConfig", "EvalRun", "RefusalDetector", "bradley_terry_elo", "summarize", "wilson"]

"""What an assessment is asked to do (AssessmentConfig, one field per CLI flag) and its constants."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from charter.backends import MODEL_HELP, ModelSpec
from charter.core.errors import InputError, require_at_least_one
from charter.core.options import option
from charter.evals.run import CATEGORY_COLUMNS as EVAL_CATEGORY_COLUMNS

CHECKS = ("corpus", "generated", "refusal", "non_refusal")
PASS, FAIL, INSUFFICIENT, NOT_ASSESSED, INCOMPLETE = "PASS", "FAIL", "INSUFFICIENT", "NOT ASSESSED", "INCOMPLETE"
ANSWERS, ASSESSMENT, REPORT, CHART = "answers.jsonl", "assessment.json", "report.md", "assessment.png"
FIGURES = (
    "corpus_samples",
    "corpus_min_qualified",
    "answer_samples",
    "answer_min_qualified",
    "refusal_samples",
    "min_refused",
    "max_over_refused",
)
STANDARD = "TC260-003 Basic Safety Requirements for Generative Artificial Intelligence Services (structure)"
CAVEAT = (
    "Sample sizes and thresholds are those of the compliance profile(s) named here, as commonly cited from "
    "the standard; Charter does not track the standard's text. Check them against the current text (and any "
    "national standard that supersedes it) before relying on this assessment."
)
CATEGORY_COLUMNS = EVAL_CATEGORY_COLUMNS + ("domain_en",)  # CValues names its domain column so
RESPONSE_FIELDS = ("completion", "chosen", "response", "output", "answer")
_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")

# Per check: its section, title, the figures it reads, and whether the share must be at least
# (min) or at most (max) the threshold.
SPEC = {
    "corpus": {
        "section": "1",
        "title": "Corpus safety assessment",
        "metric": "qualified share of sampled training records",
        "samples": "corpus_samples",
        "threshold": "corpus_min_qualified",
        "bound": "min",
    },
    "generated": {
        "section": "2",
        "title": "Generated-content safety assessment",
        "metric": "qualified share of answers to the test question bank",
        "samples": "answer_samples",
        "threshold": "answer_min_qualified",
        "bound": "min",
    },
    "refusal": {
        "section": "3.1",
        "title": "Refusal of the should-refuse bank",
        "metric": "refused share",
        "samples": "refusal_samples",
        "threshold": "min_refused",
        "bound": "min",
    },
    "non_refusal": {
        "section": "3.2",
        "title": "Non-refusal of the should-not-refuse bank",
        "metric": "over-refused share",
        "samples": "refusal_samples",
        "threshold": "max_over_refused",
        "bound": "max",
    },
}


@dataclass
class AssessmentConfig:
    """Arguments of ``charter assess`` (one field per CLI flag)."""

    model: str = option(help=f"The model behind the service. {MODEL_HELP}", flags=("--model", "-m"))
    out: str = option(
        help="Output directory: assessment.json, report.md, assessment.png, samples_*.jsonl, answers.jsonl.",
        flags=("--out", "-o"),
        path=True,
    )
    profiles: tuple[str, ...] = option(
        (),
        help="Compliance profile(s) with assessment figures (cac-genai: TC260-003 as commonly cited); "
        "several compose to the stricter figure.",
        flags=("--profile", "-p"),
    )
    guard: str | None = option(
        None,
        help="Guard directory (charter guard train) that judges corpus records and answers.",
        flags=("--guard", "-g"),
        path=True,
    )
    corpus: tuple[str, ...] = option(
        (),
        help="Training data file(s): JSONL/JSON/CSV/TXT (TRL messages, prompt+completion, "
        "prompt/chosen/rejected, HH-RLHF transcripts, text). Default: a sealed hf: model's data.",
        path=True,
    )
    corpus_column: str | None = option(None, help="Field holding the training text (default: detected).")
    questions: str | None = option(None, help="Generated-content test question bank.", path=True)
    questions_column: str | None = option(None)
    questions_where: str | None = option(None, help="Keep rows with COLUMN=VALUE (default: all).")
    refuse_bank: str | None = option(None, help="Should-refuse bank.", path=True)
    refuse_column: str | None = option(None)
    refuse_where: str | None = option(
        None, help="COLUMN=VALUE or none (default: label=unsafe when the file has a label column)."
    )
    answer_bank: str | None = option(None, help="Should-not-refuse bank.", path=True)
    answer_column: str | None = option(None)
    answer_where: str | None = option(
        None, help="COLUMN=VALUE or none (default: label=safe when the file has a label column)."
    )
    seed: int = option(0, help="Seed of the samples (and of sampling when --temperature > 0).")
    batch_size: int = option(16, help="Prompts generated per batch.")
    max_new_tokens: int = option(256, help="Token limit of each answer.")
    temperature: float = option(0.0, help="Sampling temperature (0 = greedy).")
    as_served: bool = option(False, help="Count guard blocks as refusals (the service behind charter serve).")
    require_interval: bool = option(False, help="PASS only when the whole 95% interval clears the threshold.")
    # Overrides of the profile figures.
    corpus_samples: int | None = option(None, help="Override: training records to sample.")
    corpus_min_qualified: float | None = option(None, help="Override: minimum qualified share (0-1).")
    answer_samples: int | None = option(None, help="Override: questions to answer.")
    answer_min_qualified: float | None = option(None, help="Override: minimum qualified share of answers.")
    refusal_samples: int | None = option(None, help="Override: prompts per refusal bank.")
    min_refused: float | None = option(None, help="Override: minimum refused share of the should-refuse bank.")
    max_over_refused: float | None = option(None, help="Override: maximum refused share of the should-not-refuse bank.")

    def validate(self) -> None:
        if not self.profiles:
            raise InputError(
                "name a compliance profile with [assessment] figures (e.g. --profile cac-genai), or "
                "--profile none with every figure as a flag",
                source="--profile",
            )
        require_at_least_one(
            self, "batch_size", "max_new_tokens", "corpus_samples", "answer_samples", "refusal_samples"
        )
        for name in ("corpus_min_qualified", "answer_min_qualified", "min_refused", "max_over_refused"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise InputError("must be a share in [0, 1] (e.g. 0.96)", source="--" + name.replace("_", "-"))
        if self.temperature < 0:
            raise InputError("--temperature cannot be negative", source="--temperature")
        ModelSpec.parse(self.model)


@dataclass
class CorpusItem:
    source: str
    line: int
    segments: list[tuple[str, str, str | None]] = field(default_factory=list)  # (side, text, context)

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"

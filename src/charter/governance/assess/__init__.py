"""``charter assess``: a pre-launch safety assessment in the structure of the TC260-003 basic safety
requirements for generative AI services.

Four checks, each a share with its 95% Wilson interval, a required sample size and a pass threshold
taken from the compliance profile(s) (``[assessment]``; ``cac-genai`` carries the figures as
commonly cited, which the deployer must check against the current text) or from flags:

1. corpus: a seeded random sample of the training records, each judged by the guard's stage 1 —
   every assistant turn by the output head (its user turn as context), text-only records by the
   input head — qualified when nothing scores above the block threshold; a drawn record with no
   text to judge is reported as empty and left out of the share (the draw continues past it);
2. generated content: the model answers a sample of the test question bank; an answer is qualified
   when the guard's output head does not block it;
3. refusal: the model answers a sample of the should-refuse bank; refused = a full refusal by
   ``RefusalDetector`` (with ``as_served``, also a guard block, as ``charter serve`` would answer);
   and a sample of the should-not-refuse bank, where any refusal (full or partial) is an
   over-refusal.

A check passes when its sample reaches the required size and the point estimate clears the
threshold (with ``require_interval``, the whole interval must clear it). A sample smaller than
required is INSUFFICIENT, never a silent pass; a check without input is NOT ASSESSED; the
conclusion is PASS only when all four pass.

Output (``out/``): ``answers.jsonl`` (every generated answer; a rerun with the same model, seed and
sampling resumes and regenerates nothing), ``run.json``, ``samples_<check>.jsonl`` (every judged
item with its score and label, for audit), ``assessment.json``, ``report.md`` and
``assessment.png``.
"""

from charter.governance.assess.banks import Bank
from charter.governance.assess.config import (
    ANSWERS,
    ASSESSMENT,
    CATEGORY_COLUMNS,
    CAVEAT,
    CHART,
    CHECKS,
    FAIL,
    FIGURES,
    INCOMPLETE,
    INSUFFICIENT,
    NOT_ASSESSED,
    PASS,
    REPORT,
    RESPONSE_FIELDS,
    SPEC,
    STANDARD,
    AssessmentConfig,
    CorpusItem,
)
from charter.governance.assess.corpus import model_identity, read_seal, record_segments, sealed_corpus
from charter.governance.assess.report import plot_assessment, render_report
from charter.governance.assess.result import (
    AssessmentResult,
    CheckResult,
    Conclusion,
    Figure,
    threshold_text,
)
from charter.governance.assess.run import SafetyAssessment

__all__ = [
    "ANSWERS",
    "ASSESSMENT",
    "CHART",
    "FAIL",
    "INCOMPLETE",
    "INSUFFICIENT",
    "NOT_ASSESSED",
    "PASS",
    "REPORT",
    "AssessmentConfig",
    "AssessmentResult",
    "CheckResult",
    "Conclusion",
    "Figure",
    "Bank",
    "CATEGORY_COLUMNS",
    "CAVEAT",
    "CHECKS",
    "CorpusItem",
    "FIGURES",
    "RESPONSE_FIELDS",
    "SPEC",
    "STANDARD",
    "SafetyAssessment",
    "model_identity",
    "plot_assessment",
    "read_seal",
    "record_segments",
    "render_report",
    "sealed_corpus",
    "threshold_text",
]

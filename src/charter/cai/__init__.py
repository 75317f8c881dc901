"""Constitutional AI data generation: SL-CAI critique -> revision (and, later, AI feedback)."""

from charter.cai.critique_revise import (
    CritiqueReviser,
    CritiqueRevisionConfig,
    run_critique_revision,
)

__all__ = ["CritiqueRevisionConfig", "CritiqueReviser", "run_critique_revision"]

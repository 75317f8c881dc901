"""Constitutional AI data generation: SL-CAI critique -> revision and RLAIF preference labels."""

from charter.cai.critique_revise import CritiqueReviser, CritiqueRevisionConfig
from charter.cai.preferences import Comparison, ConstitutionJudge, PairJudgement, PreferenceConfig, PreferenceLabeller

__all__ = [
    "Comparison",
    "ConstitutionJudge",
    "PairJudgement",
    "CritiqueRevisionConfig",
    "CritiqueReviser",
    "PreferenceConfig",
    "PreferenceLabeller",
]

"""Compliance profiles: the procedural mechanics a deployment must follow (AI-disclosure reminders,
content labels, hand-off rules, log retention), composed from bundled profiles (CAC generative-AI
and anthropomorphic-interaction measures, EU AI Act Art. 50) and the deployer's own. Content policy
is not here: that is the deployer's constitution."""

from charter.policy.profiles import BUNDLED, EffectiveProfile, compose, load_profile

__all__ = ["BUNDLED", "EffectiveProfile", "compose", "load_profile"]

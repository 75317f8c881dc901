"""Governance: constitution drift audits, generated documentation and filing dossiers, the CI
re-filing check, collective constitutions and the pre-launch safety assessment.

Import from the submodules (``charter.governance.drift`` …): each pulls in only what it needs.
"""

"""Tamper-evident audit log (hash chain + RFC 6962 Merkle checkpoints) in a real database."""

from charter.audit.db import connect
from charter.audit.entries import Checkpoint, Entry, VerifyReport
from charter.audit.export import verify_export
from charter.audit.log import AuditLog
from charter.audit.merkle import MerkleTree, leaf_hash, node_hash, verify_consistency, verify_inclusion
from charter.audit.witness import Witness, load_trusted
from charter.audit.writer import GroupCommitWriter
from charter.core.clock import utc_now

__all__ = [
    "AuditLog",
    "Checkpoint",
    "Entry",
    "GroupCommitWriter",
    "MerkleTree",
    "VerifyReport",
    "connect",
    "leaf_hash",
    "node_hash",
    "Witness",
    "load_trusted",
    "utc_now",
    "verify_consistency",
    "verify_export",
    "verify_inclusion",
]

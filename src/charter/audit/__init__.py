"""Tamper-evident audit log (hash chain + RFC 6962 Merkle checkpoints) in a real database."""

from charter.audit.db import connect
from charter.audit.log import AuditLog, Checkpoint, Entry, GroupCommitWriter, VerifyReport, utc_now, verify_export
from charter.audit.merkle import MerkleTree, leaf_hash, node_hash, verify_consistency, verify_inclusion
from charter.audit.witness import Witness, load_trusted

__all__ = ["AuditLog", "Checkpoint", "Entry", "GroupCommitWriter", "MerkleTree", "VerifyReport", "connect", "leaf_hash", "node_hash",
           "Witness", "load_trusted", "utc_now", "verify_consistency", "verify_export", "verify_inclusion"]

"""Seal, verify and trace models: model-signing file signatures + a signed in-toto provenance
statement binding the weights to the constitution, data, training and evaluation."""

from charter.provenance.keys import generate_keypair, load_private_key, load_public_key
from charter.provenance.receipts import sign_receipt, verify_receipt
from charter.provenance.seal import SealConfig, Sealer
from charter.provenance.verify import SealLink, VerifiedModel, lineage, verify_model, walk_seals

__all__ = [
    "SealConfig",
    "SealLink",
    "Sealer",
    "VerifiedModel",
    "generate_keypair",
    "lineage",
    "load_private_key",
    "load_public_key",
    "sign_receipt",
    "verify_model",
    "verify_receipt",
    "walk_seals",
]

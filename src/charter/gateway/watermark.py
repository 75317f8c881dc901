"""Implicit watermarks for local generation (transformers' built-in watermarking: the
Kirchenbauer et al. green-list scheme, or SynthID-Text) and detection of the green-list mark.

Only a local upstream can be watermarked: the mark is a bias on the next-token logits, which a
remote server does not expose. Detection needs the generating model's tokenizer and vocabulary
size (not its weights) and the deployment's hashing key.
"""

from __future__ import annotations

import functools
from pathlib import Path

from charter.errors import InputError

DEFAULT_KEY = 15485863  # transformers' own default hashing key


def _kirchenbauer(hashing_key: int | None, greenlist_ratio: float, bias: float):
    """The one green-list configuration generation and detection must share."""
    from transformers import WatermarkingConfig

    return WatermarkingConfig(greenlist_ratio=greenlist_ratio, bias=bias, hashing_key=hashing_key or DEFAULT_KEY,
                              seeding_scheme="lefthash", context_width=1)


def generation_watermark(cfg: dict | None):
    """A transformers watermarking config from the compliance layer's settings (None: off)."""
    if not cfg:
        return None
    if cfg["method"] == "synthid":
        from transformers import SynthIDTextWatermarkingConfig

        key = cfg["hashing_key"] or DEFAULT_KEY
        keys = [(key * (i + 1) * 2654435761) % (2**31) for i in range(20)]  # SynthID wants a tuple of keys
        return SynthIDTextWatermarkingConfig(ngram_len=5, keys=keys)
    return _kirchenbauer(cfg["hashing_key"], cfg["greenlist_ratio"], cfg["bias"])


def _model_files(spec: str) -> Path:
    from charter.backends.spec import ModelSpec, local_model_dir

    path = local_model_dir(ModelSpec.parse(spec))
    if path is None:
        raise InputError("watermark detection needs the local model that generated the text (embedded, hf:PATH, gguf:PATH)",
                         source=spec)
    return path


@functools.lru_cache(maxsize=8)
def _detector(model: str, hashing_key: int, greenlist_ratio: float, bias: float):
    """Tokenizer and detector for one deployment's settings, built once per process (loading them
    resolves the model files, which for a GGUF means hashing it)."""
    from transformers import AutoConfig, AutoTokenizer, WatermarkDetector

    files = _model_files(model)
    tokenizer = AutoTokenizer.from_pretrained(files)
    config = AutoConfig.from_pretrained(files)
    if getattr(config, "eos_token_id", None) is None:
        config.eos_token_id = tokenizer.eos_token_id
    return tokenizer, WatermarkDetector(model_config=config, device="cpu",
                                        watermarking_config=_kirchenbauer(hashing_key, greenlist_ratio, bias))


def detect_ids(ids, model: str, *, hashing_key: int, greenlist_ratio: float = 0.25, bias: float = 2.0,
               z_threshold: float = 4.0) -> dict:
    """The test on token ids (what the model generated, before any re-tokenisation)."""
    import torch

    _, detector = _detector(model, hashing_key, greenlist_ratio, bias)
    return _result(detector, torch.as_tensor([list(ids)], dtype=torch.long), z_threshold)


def detect(text: str, model: str, *, hashing_key: int, greenlist_ratio: float = 0.25, bias: float = 2.0,
           z_threshold: float = 4.0) -> dict:
    """z-score and p-value of the green-list mark in ``text`` (one-sided test against the
    unwatermarked green fraction ``greenlist_ratio``). The text is re-tokenised with the model's
    tokenizer; for a trained model that recovers the generated tokens almost everywhere."""
    tokenizer, detector = _detector(model, hashing_key, greenlist_ratio, bias)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    if ids.shape[1] < 2:
        raise InputError("text too short to test (need at least 2 tokens)", source="text")
    return _result(detector, ids, z_threshold)


def _result(detector, ids, z_threshold: float) -> dict:
    out = detector(ids, z_threshold=z_threshold, return_dict=True)
    z = float(out.z_score[0])
    return {"tokens": int(out.num_tokens_scored[0]), "green_tokens": int(out.num_green_tokens[0]),
            "green_fraction": float(out.green_fraction[0]), "z_score": z, "p_value": float(out.p_value[0]),
            "z_threshold": z_threshold, "watermarked": z >= z_threshold}

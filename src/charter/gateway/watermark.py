"""Implicit watermarks for local generation (transformers' built-in watermarking: the
Kirchenbauer et al. green-list scheme, or SynthID-Text) and detection of the green-list mark.

Only a local upstream can be watermarked: the mark is a bias on the next-token logits, which a
remote server does not expose. Detection needs the generating model's tokenizer and vocabulary
size (not its weights) and the deployment's hashing key.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from pathlib import Path

from charter.core.errors import InputError


def _seed_key(secret: bytes, label: bytes) -> int:
    """A 63-bit integer drawn from the secret (torch generators take seeds below 2**64)."""
    return int.from_bytes(hmac.new(secret, label, hashlib.sha256).digest()[:8], "big") >> 1


def _check_key(hashing_key) -> bytes:
    if not isinstance(hashing_key, (bytes, bytearray)) or len(hashing_key) < 16:
        raise InputError(
            "the watermark key must be a secret of at least 128 bits (a key file from the gateway)",
            source="watermark key",
        )
    return bytes(hashing_key)


@functools.lru_cache(maxsize=1)
def _keyed_classes():
    """transformers' green-list processor with the green list of each context token seeded by
    HMAC-SHA256(secret, token) instead of ``hashing_key * token``: the built-in seeding multiplies
    an integer key modulo 2**64, so it cannot carry a 128-bit secret, and its key is recoverable
    from a few seeds. Everything else (bias, ratio, detector statistics) is the library's."""
    from transformers import WatermarkingConfig
    from transformers.generation.logits_process import WatermarkLogitsProcessor

    class KeyedWatermarkLogitsProcessor(WatermarkLogitsProcessor):
        def __init__(self, *args, secret: bytes, **kwargs):
            super().__init__(*args, **kwargs)
            self.secret = secret
            self._seeds: dict[int, int] = {}

        def set_seed(self, input_seq):
            token = int(input_seq[-1].item())
            seed = self._seeds.get(token)
            if seed is None:
                seed = self._seeds[token] = _seed_key(self.secret, b"green:%d" % token)
            self.rng.manual_seed(seed)

    class KeyedWatermarkingConfig(WatermarkingConfig):
        def __init__(self, *, secret: bytes, **kwargs):
            super().__init__(**kwargs)
            self.secret = secret

        def to_dict(self) -> dict:
            # Never serialised: generation configs are printed and saved, and the detector
            # rebuilds the library's processor from this dict before Charter swaps in its own.
            return {k: v for k, v in super().to_dict().items() if k != "secret"}

        def construct_processor(self, vocab_size: int, device):
            return KeyedWatermarkLogitsProcessor(
                vocab_size=vocab_size,
                device=device,
                greenlist_ratio=self.greenlist_ratio,
                bias=self.bias,
                hashing_key=self.hashing_key,
                seeding_scheme=self.seeding_scheme,
                context_width=self.context_width,
                secret=self.secret,
            )

    return KeyedWatermarkLogitsProcessor, KeyedWatermarkingConfig


def _kirchenbauer(hashing_key: bytes, greenlist_ratio: float, bias: float):
    """The one green-list configuration generation and detection must share."""
    secret = _check_key(hashing_key)
    _, config = _keyed_classes()
    return config(
        secret=secret,
        greenlist_ratio=greenlist_ratio,
        bias=bias,
        hashing_key=_seed_key(secret, b"table"),
        seeding_scheme="lefthash",
        context_width=1,
    )


def generation_watermark(cfg: dict | None):
    """A transformers watermarking config from the compliance layer's settings (None: off)."""
    if not cfg:
        return None
    if cfg["method"] == "synthid":
        from transformers import SynthIDTextWatermarkingConfig

        secret = _check_key(cfg["hashing_key"])
        keys = [_seed_key(secret, b"synthid:%d" % i) for i in range(20)]  # SynthID wants a tuple of keys
        return SynthIDTextWatermarkingConfig(ngram_len=5, keys=keys)
    return _kirchenbauer(cfg["hashing_key"], cfg["greenlist_ratio"], cfg["bias"])


def _model_files(spec: str) -> Path:
    from charter.backends.spec import ModelSpec, local_model_dir

    path = local_model_dir(ModelSpec.parse(spec))
    if path is None:
        raise InputError(
            "watermark detection needs the local model that generated the text (embedded, hf:PATH, gguf:PATH)",
            source=spec,
        )
    return path


@functools.lru_cache(maxsize=8)
def _detector(model: str, hashing_key: bytes, greenlist_ratio: float, bias: float):
    """Tokenizer and detector for one deployment's settings, built once per process (loading them
    resolves the model files, which for a GGUF means hashing it)."""
    from transformers import AutoConfig, AutoTokenizer, WatermarkDetector

    files = _model_files(model)
    tokenizer = AutoTokenizer.from_pretrained(files)
    config = AutoConfig.from_pretrained(files)
    if getattr(config, "eos_token_id", None) is None:
        config.eos_token_id = tokenizer.eos_token_id
    wm = _kirchenbauer(hashing_key, greenlist_ratio, bias)
    detector = WatermarkDetector(model_config=config, device="cpu", watermarking_config=wm)
    detector.processor = wm.construct_processor(config.vocab_size, "cpu")  # the keyed green lists
    return tokenizer, detector


def detect_ids(
    ids, model: str, *, hashing_key: bytes, greenlist_ratio: float = 0.25, bias: float = 2.0, z_threshold: float = 4.0
) -> dict:
    """The test on token ids (what the model generated, before any re-tokenisation)."""
    import torch

    _, detector = _detector(model, hashing_key, greenlist_ratio, bias)
    return _result(detector, torch.as_tensor([list(ids)], dtype=torch.long), z_threshold)


def detect(
    text: str,
    model: str,
    *,
    hashing_key: bytes,
    greenlist_ratio: float = 0.25,
    bias: float = 2.0,
    z_threshold: float = 4.0,
) -> dict:
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
    return {
        "tokens": int(out.num_tokens_scored[0]),
        "green_tokens": int(out.num_green_tokens[0]),
        "green_fraction": float(out.green_fraction[0]),
        "z_score": z,
        "p_value": float(out.p_value[0]),
        "z_threshold": z_threshold,
        "watermarked": z >= z_threshold,
    }

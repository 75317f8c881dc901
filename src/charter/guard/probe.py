"""Stage 1b: a linear probe on the served model's own hidden states (the Classifiers++ idea: the
forward pass that serves the request also screens it, so screening costs almost nothing extra).

Features are the mean over tokens of one layer's hidden states for the conversation as the model
sees it (input side: the user turn; output side: the user turn and the assistant's reply). A
logistic head is fitted on every ``layer_stride``-th layer and the layer with the best validation
AUROC is kept; thresholds are calibrated on benign validation scores like stage 1a's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from charter.guard.classifier import LogisticHead, calibrate_threshold, roc_auc


def _conversation(side: str, text: str, prompt: str | None) -> list[dict]:
    if side == "input":
        return [{"role": "user", "content": text}]
    return [{"role": "user", "content": prompt or ""}, {"role": "assistant", "content": text}]


class HiddenStates:
    """Mean-pooled hidden states of an HF backend's model, every layer at once."""

    def __init__(self, backend, batch_size: int = 8, max_tokens: int = 512):
        self.backend = backend
        self.batch_size = batch_size
        self.max_tokens = max_tokens

    def features(self, side: str, texts: Sequence[str], prompts: Sequence[str | None] | None = None) -> np.ndarray:
        """(n_texts, n_layers + 1, hidden) — index 0 is the embedding output."""
        b = self.backend
        prompts = prompts or [None] * len(texts)
        ids = [b._encode(b.render(_conversation(side, t, p)))[-self.max_tokens :] for t, p in zip(texts, prompts)]
        out = None
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            width = max(len(x) for x in chunk)
            input_ids = torch.full((len(chunk), width), b.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for k, x in enumerate(chunk):
                input_ids[k, : len(x)] = torch.tensor(x)
                mask[k, : len(x)] = 1
            with torch.inference_mode():
                hs = b.model(
                    input_ids=input_ids.to(b.device),
                    attention_mask=mask.to(b.device),
                    output_hidden_states=True,
                    logits_to_keep=1,
                ).hidden_states
            m = mask.to(b.device).unsqueeze(-1).float()
            pooled = torch.stack([(h.float() * m).sum(1) / m.sum(1) for h in hs], dim=1).cpu().numpy()
            if out is None:
                out = np.zeros((len(ids), pooled.shape[1], pooled.shape[2]), dtype=np.float32)
            out[start : start + len(chunk)] = pooled
        return out


def train_probe(
    features: HiddenStates,
    side: str,
    train: list[dict],
    val: list[dict],
    *,
    target_fpr: float,
    escalation_fpr: float,
    layer_stride: int = 2,
    l2: float = 1e-2,
) -> dict:
    xt = features.features(side, [r["text"] for r in train], [r.get("prompt") for r in train])
    xv = features.features(side, [r["text"] for r in val], [r.get("prompt") for r in val])
    yt, yv = np.array([r["y"] for r in train]), np.array([r["y"] for r in val])
    mu, sd = xt.mean(0), xt.std(0) + 1e-6  # standardise per layer and unit: hidden scales differ by depth
    per_layer, best = {}, None
    for layer in range(1, xt.shape[1], layer_stride):
        head = LogisticHead(l2=l2).fit((xt[:, layer] - mu[layer]) / sd[layer], yt)
        s = head.scores((xv[:, layer] - mu[layer]) / sd[layer])
        auc = roc_auc(s[yv == 1], s[yv == 0])
        per_layer[layer] = auc
        if best is None or auc > best[0]:
            best = (auc, layer, head, s)
    auc, layer, head, s = best  # type: ignore[misc]
    block_t = calibrate_threshold(s[yv == 0], target_fpr)
    return {
        "model": features.backend.info.spec,
        "layer": layer,
        "head": head.state(),
        "mean": mu[layer].tolist(),
        "std": sd[layer].tolist(),
        "block_threshold": block_t,
        "escalation_threshold": min(calibrate_threshold(s[yv == 0], escalation_fpr), block_t),
        "validation": {
            "auroc": auc,
            "auroc_by_layer": per_layer,
            "tpr": float((s[yv == 1] > block_t).mean()),
            "fpr": float((s[yv == 0] > block_t).mean()),
        },
    }


class Probe:
    def __init__(self, state: dict, features: HiddenStates):
        self.state, self.features = state, features
        self.head = LogisticHead.from_state(state["head"])
        self.mean, self.std = np.asarray(state["mean"]), np.asarray(state["std"])

    def scores(self, side: str, texts: Sequence[str], prompts: Sequence[str | None] | None = None) -> np.ndarray:
        x = self.features.features(side, texts, prompts)[:, self.state["layer"]]
        return self.head.scores((x - self.mean) / self.std)

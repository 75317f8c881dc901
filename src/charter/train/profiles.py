"""Principle absorption profiles: where in depth each principle's training signal landed.

During training, every gradient that reaches a parameter of block ``l`` while a batch of principle
group ``g`` is being learned adds its squared norm to ``mass[g][l]``. A group of several principles
splits its mass equally among them. Per principle the row is normalised over blocks into a
distribution; its Shannon entropy in bits (0 = one block, log2(L) = uniform) and its centroid
(mean depth, 0 = first block, 1 = last) summarise where the principle was absorbed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from charter.train.routing import block_index, group_principles

NO_PRINCIPLE = "(no principle)"  # the row of examples that carry no principle (e.g. helpfulness data)


def entropy_bits(dist: Sequence[float]) -> float:
    total = float(sum(dist))
    if total <= 0:
        return 0.0
    return float(-sum((p / total) * math.log2(p / total) for p in dist if p > 0))


def centroid(dist: Sequence[float]) -> float:
    """Mean depth as a fraction of the stack: 0 = first block, 1 = last block."""
    total = float(sum(dist))
    n = len(dist)
    if total <= 0 or n < 2:
        return 0.0
    return float(sum(i * p for i, p in enumerate(dist)) / total / (n - 1))


class AbsorptionProfiler:
    """Accumulates squared gradient norms per block, attributed to the active principle group.

    A tensor hook on each trainable block parameter sees that parameter's gradient for the current
    micro-batch before it is accumulated, so gradient accumulation does not blur attribution.
    Sums stay on the device; they are moved to the per-principle table once per micro-batch.
    """

    def __init__(self, model: torch.nn.Module, n_blocks: int):
        self.n_blocks = n_blocks
        self.mass: dict[str, list[float]] = {}
        self.examples: dict[str, int] = {}
        self._pending: torch.Tensor | None = None
        self._pending_group: str | None = None
        self._handles = []
        for name, p in model.named_parameters():
            block = block_index(name)
            if block is None or block >= n_blocks or not p.requires_grad:
                continue
            self._handles.append(p.register_hook(self._hook(block, p)))

    def _hook(self, block: int, p: torch.nn.Parameter):
        def hook(grad: torch.Tensor) -> None:
            if self._pending is None:
                self._pending = torch.zeros(self.n_blocks, dtype=torch.float64, device=grad.device)
            self._pending[block] += grad.detach().double().pow(2).sum()

        return hook

    def begin(self, group: str, n_examples: int) -> None:
        """Called before a micro-batch's forward pass."""
        self.flush()
        self._pending_group = group
        for pid in group_principles(group) or [NO_PRINCIPLE]:
            self.examples[pid] = self.examples.get(pid, 0) + n_examples

    def flush(self) -> None:
        if self._pending is not None and self._pending_group is not None:
            principles = group_principles(self._pending_group) or [NO_PRINCIPLE]
            share = (self._pending / len(principles)).tolist()
            for pid in principles:
                row = self.mass.setdefault(pid, [0.0] * self.n_blocks)
                for i, v in enumerate(share):
                    row[i] += v
        self._pending = None

    def remove(self) -> None:
        self.flush()
        for h in self._handles:
            h.remove()
        self._handles = []

    # -- persistence (checkpoints) -------------------------------------------------------------
    def state_dict(self) -> dict:
        self.flush()
        return {"n_blocks": self.n_blocks, "mass": self.mass, "examples": self.examples}

    def load_state_dict(self, state: dict) -> None:
        if state.get("n_blocks") == self.n_blocks:
            self.mass = {k: list(v) for k, v in state["mass"].items()}
            self.examples = dict(state["examples"])

    # -- report ----------------------------------------------------------------------------------
    def report(self, routing: dict | None = None) -> dict:
        self.flush()
        out = {
            "measure": "sum over steps of squared gradient norms of each block's trainable parameters, "
            "attributed to the principle group of the batch (split equally within a group)",
            "n_blocks": self.n_blocks,
            "max_entropy_bits": math.log2(self.n_blocks) if self.n_blocks > 1 else 0.0,
            "principles": {},
        }
        for pid in sorted(self.mass):
            row = self.mass[pid]
            total = sum(row)
            dist = [v / total for v in row] if total > 0 else [0.0] * len(row)
            out["principles"][pid] = {
                "examples": self.examples.get(pid, 0),
                "total_mass": total,
                "distribution": dist,
                "entropy_bits": entropy_bits(row),
                "centroid_depth": centroid(row),
                "peak_block": max(range(len(row)), key=row.__getitem__) if total > 0 else None,
            }
            if routing and pid != NO_PRINCIPLE:
                blocks = set(routing["principles"].get(pid, {}).get("blocks", []))
                out["principles"][pid]["mass_in_routed_blocks"] = sum(d for i, d in enumerate(dist) if i in blocks)
        return out


def write_profiles(report: dict, out_dir: Path, title: str = "") -> tuple[Path, Path | None]:
    out_dir = Path(out_dir)
    json_path = out_dir / "profiles.json"
    tmp = json_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(json_path)
    return json_path, plot_profiles(report, out_dir / "profiles.png", title)


def plot_profiles(report: dict, path: Path, title: str = "") -> Path | None:
    rows = report["principles"]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    data = [rows[n]["distribution"] for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * report["n_blocks"] + 4), 0.45 * len(names) + 1.8))
    im = ax.imshow(data, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(
        [f"{n}  (H={rows[n]['entropy_bits']:.2f} b, c={rows[n]['centroid_depth']:.2f})" for n in names], fontsize=8
    )
    ax.set_xlabel("transformer block (0 = first after the embeddings)")
    ax.set_title(title or "Principle absorption profiles (share of squared gradient norm per block)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

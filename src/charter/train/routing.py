"""Depth-selective gradient routing: which transformer blocks each principle may train.

A principle's ``depth`` (shallow / middle / deep thirds, or explicit fractions) maps to a set of
blocks of the model being trained. An example shaped by several principles trains the union of
their blocks. Parameters outside the blocks (embeddings, final norm, LM head) belong to no
principle, so they are frozen — and frozen with routing off too (``--no-routing``): a routed and an
unrouted run then train the same parameter set and differ only in which blocks each batch may
update, so "routed to the deep third" means exactly that and the two runs compare equal work.

How the routing is enforced (see docs/training.md, "Why gradient masks"): batches hold examples
of one principle group only, and before each forward pass the trainable parameters of unrouted
blocks get ``requires_grad=False``. Autograd then never computes their gradients, their ``.grad``
stays ``None`` and PyTorch optimisers skip them entirely, including weight decay and Adam moment
updates, so an unrouted parameter is bit-identical after the step. It works the same for full
fine-tuning and for LoRA, needs one adapter rather than one per group, and costs nothing (it even
saves the weight-gradient work of the frozen blocks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from charter.constitution.model import Constitution
from charter.core.errors import InputError

# Block index inside a parameter name: llama/mistral/qwen "model.layers.7.", gpt2 "h.7.", and the
# same under PEFT's "base_model.model." prefix.
_BLOCK = re.compile(r"(?:^|\.)(?:layers|h|blocks|block)\.(\d+)\.")

UNROUTED = "*"  # the group key of examples that carry no principle (e.g. helpfulness data)


def block_index(param_name: str) -> int | None:
    m = _BLOCK.search(param_name)
    return int(m.group(1)) if m else None


def num_blocks(model: torch.nn.Module) -> int:
    config = getattr(model, "config", None)
    n = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    if n:
        return int(n)
    found = {i for name, _ in model.named_parameters() if (i := block_index(name)) is not None}
    if not found:
        raise InputError(
            "cannot find the transformer blocks of this model (no 'layers.N.' parameters)", source="--model"
        )
    return max(found) + 1


def group_key(principles: Iterable[str]) -> str:
    """Canonical key of a set of principle ids; examples with the same key share batches."""
    ids = sorted(set(principles))
    return "+".join(ids) if ids else UNROUTED


def group_principles(key: str) -> list[str]:
    return [] if key == UNROUTED else key.split("+")


@dataclass
class RoutingPlan:
    """Principle id -> blocks, for a model with ``n_blocks`` blocks."""

    n_blocks: int
    principle_blocks: dict[str, list[int]]
    enabled: bool = True
    depths: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_constitution(cls, constitution: Constitution, n_blocks: int, enabled: bool = True) -> RoutingPlan:
        return cls(
            n_blocks=n_blocks,
            principle_blocks={p.id: list(p.layer_range(n_blocks)) for p in constitution.principles},
            enabled=enabled,
            depths={p.id: p.depth if isinstance(p.depth, str) else list(p.depth) for p in constitution.principles},
        )

    def check_known(self, principles: Iterable[str], source: str, line: int | None = None) -> None:
        for pid in principles:
            if pid not in self.principle_blocks:
                raise InputError(
                    f"principle {pid!r} is not in the constitution (known: {', '.join(sorted(self.principle_blocks))})",
                    source=source,
                    line=line,
                )

    def blocks_for(self, key: str) -> list[int]:
        """Blocks an example group may train. Unrouted examples (no principle) train every block."""
        if not self.enabled or key == UNROUTED:
            return list(range(self.n_blocks))
        return sorted({b for pid in group_principles(key) for b in self.principle_blocks[pid]})

    def to_json(self, group_counts: dict[str, int] | None = None) -> dict:
        return {
            "enabled": self.enabled,
            "n_blocks": self.n_blocks,
            "enforcement": "group-homogeneous batches; unrouted blocks get requires_grad=False before each forward",
            "non_block_parameters": "frozen",  # routed or not: both runs train the same parameter set
            "principles": {
                pid: {"depth": self.depths.get(pid), "blocks": blocks}
                for pid, blocks in sorted(self.principle_blocks.items())
            },
            "groups": {
                key: {"examples": n, "blocks": self.blocks_for(key)} for key, n in sorted((group_counts or {}).items())
            },
        }


class GradientRouter:
    """Switches ``requires_grad`` of a model's trainable parameters per example group.

    Parameters outside every block (embeddings, final norm, LM head) are frozen whether routing is
    on or off: no principle is routed there, and freezing them in both runs keeps a routed and an
    unrouted run training the same parameter set (the unrouted run is the fair baseline: same
    parameters, every block for every batch)."""

    def __init__(self, model: torch.nn.Module, plan: RoutingPlan):
        self.plan = plan
        params = [(block_index(name), p) for name, p in model.named_parameters() if p.requires_grad]
        for block, p in params:
            if block is None:
                p.requires_grad_(False)
        self.params: list[tuple[int, torch.nn.Parameter]] = [(b, p) for b, p in params if b is not None]
        if not self.params:
            raise InputError(
                "no trainable parameter sits in a transformer block (Charter trains the blocks; "
                "embeddings, final norm and LM head stay frozen)",
                source="--model",
            )
        self.active: str | None = None

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self.params]

    def activate(self, key: str) -> None:
        # Applied every time, not cached: PEFT's adapter switching (used for DPO's reference
        # forward) resets requires_grad on adapter parameters behind our back.
        if not self.plan.enabled:
            return
        allowed = set(self.plan.blocks_for(key))
        for block, p in self.params:
            p.requires_grad_(block in allowed)
        self.active = key

    def release(self) -> None:
        """Every routed parameter trainable again (before saving, merging, or handing back)."""
        for _, p in self.params:
            p.requires_grad_(True)
        self.active = None


def blocks_of(names: Sequence[str]) -> set[int]:
    return {b for n in names if (b := block_index(n)) is not None}

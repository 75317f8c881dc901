"""TRL trainers with principle routing, absorption profiling and soft-label DPO.

``RoutedTrainerMixin`` adds three things to a TRL trainer without touching its training loop:
batches of one principle group (``GroupedBatchSampler``), the ``GradientRouter`` switched before each
forward pass, and the ``AbsorptionProfiler`` told which group the gradients belong to. The only
extra column the data carries through TRL's preprocessing is ``charter_group`` (and ``p_chosen``
for DPO).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader
from trl import DPOTrainer, SFTTrainer

from charter.train.losses import soft_dpo_loss
from charter.train.profiles import AbsorptionProfiler
from charter.train.routing import GradientRouter, RoutingPlan
from charter.train.sampler import GroupedBatchSampler

GROUP = "charter_group"
P_CHOSEN = "p_chosen"


class _CarryColumns:
    """Wraps a TRL collator: lifts Charter's columns out of the examples, collates the rest."""

    def __init__(self, inner, columns: tuple[str, ...]):
        self.inner = inner
        self.columns = columns

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        carried = {c: [e.pop(c) for e in examples] for c in self.columns if c in examples[0]}
        batch = self.inner(examples)
        if GROUP in carried:
            batch[GROUP] = carried[GROUP]
        if P_CHOSEN in carried:
            batch[P_CHOSEN] = torch.tensor(carried[P_CHOSEN], dtype=torch.float32)
        return batch


class RoutedTrainerMixin:
    charter_columns: tuple[str, ...] = (GROUP,)

    def setup_routing(self, plan: RoutingPlan, seed: int) -> None:
        """Call after the TRL trainer's __init__ (the model is PEFT-wrapped by then)."""
        self.routing_plan = plan
        self.router = GradientRouter(self.model, plan)
        self.profiler = AbsorptionProfiler(self.model, plan.n_blocks)
        self.data_collator = _CarryColumns(self.data_collator, self.charter_columns)
        self._group_seed = seed
        self.active_group: str | None = None

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(self._signature_columns) + [
            c for c in self.charter_columns if c not in self._signature_columns
        ]

    def get_train_dataloader(self) -> DataLoader:
        dataset = self._remove_unused_columns(self.train_dataset, description="training")
        sampler = GroupedBatchSampler(dataset[GROUP], self._train_batch_size, seed=self._group_seed)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        groups = inputs.pop(GROUP, None)
        if groups is not None and model.training:
            key = groups[0]
            if any(g != key for g in groups):  # the sampler guarantees this; fail loudly if not
                raise RuntimeError(f"a batch mixes principle groups: {sorted(set(groups))}")
            self.active_group = key
            self.router.activate(key)
            self.profiler.begin(key, len(groups))
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def finish_routing(self) -> None:
        self.profiler.flush()
        self.router.release()


class ConstitutionalSFTTrainer(RoutedTrainerMixin, SFTTrainer):
    """TRL's SFTTrainer, routed and profiled."""


class SoftLabelDPOTrainer(RoutedTrainerMixin, DPOTrainer):
    """TRL's DPOTrainer with the per-example label-smoothed loss (eps = 1 - p_chosen).

    Everything but the loss is TRL's: tokenisation, collation, the reference model (a frozen copy
    for full fine-tuning, the adapter switched off for LoRA), precomputed reference log-probs,
    logging and checkpointing.
    """

    charter_columns = (GROUP, P_CHOSEN)

    def __init__(self, *args, soft_labels: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.soft_labels = soft_labels

    def _sequence_logps(self, model, inputs) -> torch.Tensor:
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        out = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            use_cache=False,
            labels=labels,
            fused_lm_head=True,
        )
        mask = inputs["completion_mask"][..., 1:]
        per_token = out.log_probs[:, -mask.size(1) :]
        return (per_token * mask).sum(dim=1)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        p_chosen = inputs.pop(P_CHOSEN)
        # Reference first: with LoRA it runs the same model with the adapter switched off, and
        # switching it back on marks every adapter parameter trainable, so routing is re-applied
        # after it and before the policy forward builds the graph.
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_model = self.ref_model if self.ref_model is not None else self.model
            ref_chosen, ref_rejected = self.compute_ref_log_probs(ref_model, inputs)
        if self.model.training and self.active_group is not None:
            self.router.activate(self.active_group)
        logps = self._sequence_logps(model, inputs)
        chosen, rejected = logps.chunk(2, dim=0)  # the collator stacks [chosen..., rejected...]
        eps = (1.0 - p_chosen).to(chosen.device) if self.soft_labels else 0.0
        per_example, margin = soft_dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.beta, eps)
        loss = per_example.mean()

        m = self._metrics[mode]
        m["rewards/margins"].append(margin.mean().item())
        m["rewards/accuracies"].append((margin > 0).float().mean().item())
        m["rewards/chosen"].append((self.beta * (chosen - ref_chosen)).detach().mean().item())
        m["rewards/rejected"].append((self.beta * (rejected - ref_rejected)).detach().mean().item())
        m["logps/chosen"].append(chosen.detach().mean().item())
        m["logps/rejected"].append(rejected.detach().mean().item())
        m["label_epsilon"].append(float(torch.as_tensor(eps).float().mean()))
        if return_outputs:
            return loss, {"margin": margin}
        return loss

"""What ``charter guard synth`` and ``charter guard train`` are asked to do: SynthConfig and
GuardTrainConfig, one field per CLI flag, each carrying its help. Light to import (no torch): the
CLI builds its options from them at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from charter.core.options import option


@dataclass
class SynthConfig:
    """Arguments of ``charter guard synth`` (one field per CLI flag)."""

    constitution: str = option(
        help="Constitution whose content categories define the data.", flags=("--constitution", "-c")
    )
    generator: str = option(help="Model that writes requests and answers (embedded | hf:PATH | openai:URL#MODEL ...).")
    out: str = option(help="Directory for train.jsonl, val.jsonl, synth.json.", flags=("--out", "-o"), path=True)
    per_category: int = option(8, help="Requests asked for per category and round.")
    rounds: int = option(1, help="Generations per category request (different seeds).")
    categories: tuple[str, ...] = option((), help="Only these categories (repeatable).", flags=("--category",))
    outputs: bool = option(
        True, help="Also generate assistant outputs (output classifier data).", flags=("--outputs/--no-outputs",)
    )
    augmentations: bool = option(
        True, help="Jailbreak-style variants of requests (harmful and benign).", flags=("--augment/--no-augment",)
    )
    # This many augmentation kinds per request, drawn at random (seeded).
    augmentations_per_request: int = option(1, help="Variant kinds per request (drawn at random).")
    bundled: bool = option(
        True,
        help="Mix in the request sets written for Charter (charter/guard/data).",
        flags=("--bundled/--no-bundled",),
    )
    refusals: bool = option(
        True,
        help="Refusals paired with harmful requests as benign outputs.",
        flags=("--refusals/--no-refusals",),
    )
    pairs: tuple[str, ...] = option(
        (), help="HH-RLHF-format chosen/rejected JSONL (pairwise output signal; repeatable).", path=True
    )
    max_answers: int | None = option(None, help="Answer at most this many requests (half harmful, half benign).")
    # Which answers to harmful requests count as harmful (LABEL_RULES).
    answer_rule: str = option(
        "form",
        help="form: an answer to a harmful request is harmful only when shaped like the task (steps, list, code), "
        "others go to unlabelled_answers.jsonl; any: every non-refusal is harmful.",
    )
    translator: str | None = option(None, help="Model that translates requests (adds translated variants).")
    mix_harmful: tuple[str, ...] = option((), help="Prompt file(s) mixed in as harmful (e.g. AdvBench).", path=True)
    labelled_outputs: tuple[str, ...] = option(
        (),
        help="JSONL of replies labelled by hand: prompt, text, label harmful|benign (repeatable).",
        path=True,
    )
    # A seeded sample: caps training cost.
    labelled_limit: int | None = option(
        None, help="Use at most this many hand-labelled replies (seeded sample; caps training time)."
    )
    mix_benign: tuple[str, ...] = option(
        (), help="Prompt file(s) mixed in as benign (XSTest: label=safe rows).", path=True
    )
    val_fraction: float = option(0.2, help="Validation share within each category.")
    dedupe_threshold: float = option(0.95, help="Cosine similarity above which near-duplicates are dropped.")
    seed: int = option(0)
    max_new_tokens: int = option(256)
    batch_size: int = option(8)
    overwrite: bool = option(False, help="Replace a non-empty output directory.")
    languages: tuple[str, ...] = option(("French", "Spanish"), cli=False)  # of the translated variants
    temperature: float = option(0.9, cli=False)


@dataclass
class GuardTrainConfig:
    """Arguments of ``charter guard train`` (one field per CLI flag)."""

    data: str = option(
        help="Directory with train.jsonl and val.jsonl (text, label, side, category).",
        flags=("--data", "-d"),
        path=True,
    )
    out: str = option(help="Guard directory (guard.json).", flags=("--out", "-o"), path=True)
    target_fpr: float = option(0.01, help="Block threshold: this false-positive rate on benign validation texts.")
    escalation_fpr: float = option(0.05, help="Escalation threshold: benign share sent to stage 2.")
    stage1: str = option(  # STAGE1_KINDS
        "finetuned",
        help="finetuned (MiniLM trained end to end, served by ONNX Runtime) "
        "or frozen (logistic head on frozen MiniLM).",
    )
    output_reads: str = option(  # what the output side's stage 1 reads
        "response", help="Output-side stage 1 reads the reply alone (response) or request + reply (exchange)."
    )
    epochs: int = option(3, help="Fine-tuning epochs.")
    lr: float = option(5e-5, help="Fine-tuning learning rate.")
    batch_size: int = option(32, help="Fine-tuning batch size.")
    max_length: int = option(128, help="Tokens read per text (request + reply pairs: twice this).")
    runtime: str = option("onnx", help="How the fine-tuned encoder is served: onnx (fp32), onnx-int8 or torch.")
    l2: float = option(1e-3, cli=False)  # frozen heads
    probe_model: str | None = option(  # stage 1b
        None, help="Also fit a stage-1b probe on this local model's hidden states (the served model)."
    )
    seed: int = option(0)
    overwrite: bool = option(False, help="Replace an existing guard.")

"""``charter guard synth``: classifier training data generated from the constitution's categories.

For every prohibited category: requests that fall under it, harmless look-alikes close to its
boundary (they hold false positives down), and jailbreak-style variants of the harmful requests
(augment.py; translations when a translator model is given). For every allowed category: benign
requests. Each request is answered by the generator to get assistant outputs; an answer to a
harmful request counts as harmful output only when it is not a refusal. Augmentations apply to
benign requests too, so that an attack form alone does not read as harmful. The constitution's own
examples, the request sets written for Charter (``charter/guard/data``, ``--bundled``) and labelled
files (``--mix-harmful``, ``--mix-benign``) are mixed in. Near-duplicates are dropped by embedding
similarity; train/validation are split within each category.

Output side (the Constitutional Classifiers recipe with a helpful-only model): the generator's
answers to harmful requests are harmful outputs when they have the form of carrying out the task
(steps, lists, code) and are not refusals — a weak generator's other answers are mostly echoes or
talk-around, so they are left out and written to ``unlabelled_answers.jsonl`` for a person to label
(``--answer-rule any`` keeps the first release's rule: every non-refusal is harmful); its answers
to benign requests are benign outputs; replies labelled by hand (``--labelled-outputs`` and, with
``--bundled``, the bundled written replies and labelled answers of the embedded model) keep their
labels; refusals (the constitution's own and the bundled phrasings) paired with harmful requests
are benign outputs. Preference files in the HH-RLHF format (``--pairs``) give (prompt, chosen,
rejected) pairs: the rejected reply is the more harmful one. Every record carries its ``source``
and the ``rule`` that labelled it; ``synth.json`` lists the rules.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from charter import __version__
from charter.backends import Backend, ModelSpec, SamplingConfig, load_backend
from charter.constitution import constitution_digest, load_constitution
from charter.core.clock import now
from charter.core.digests import file_sha256
from charter.core.errors import InputError
from charter.core.io import iter_jsonl, load_prompts, safe_label_filter
from charter.core.refusal import RefusalDetector
from charter.core.seeding import stable_seed
from charter.guard.augment import KINDS, augment
from charter.guard.config import SynthConfig

BUNDLED = Path(__file__).parent / "data"
# Replies labelled by hand: written for Charter, and the embedded model's own answers.
BUNDLED_LABELLED = ("written_outputs.jsonl", "labelled_answers.jsonl")
LABEL_RULES = {
    "request-category": (
        "input: a request asked for under a prohibited category is harmful, "
        "under an allowed category or as a look-alike benign"
    ),
    "request-file": (
        "input: rows of --mix-harmful files and the bundled harmful_requests.jsonl are harmful; "
        "--mix-benign rows (XSTest: label=safe only) and benign_requests.jsonl benign"
    ),
    "augmented": "input: a jailbreak-style wrapper or encoding keeps the label of the request inside it",
    "answer-of-harmful": (
        "output: the generator's answer to a harmful request is harmful unless the refusal detector reads it "
        "as a refusal; with --answer-rule form (the default) only when it also has the form of carrying out "
        "a task (steps, a list, headings or code) — other answers to harmful requests are left out of training "
        "and written to unlabelled_answers.jsonl for labelling by hand"
    ),
    "answer-refusal": "output: an answer the refusal detector reads as a refusal is benign, whatever the request",
    "answer-of-benign": "output: the generator's answer to a benign request is benign",
    "refusal": "output: a refusal (the constitution's, or a bundled phrasing) paired with a harmful request is benign",
    "labelled-output": (
        "output: rows of --labelled-outputs files and the bundled written_outputs.jsonl keep their "
        "hand-assigned label (what the reply does, not what was asked: rubric in bench/data/output_dev_RUBRIC.md)"
    ),
    "preference-pair": (
        "pairs: of two replies to the same HH-RLHF harmless-base conversation, the rejected one is the more harmful"
    ),
}

ASK_HARMFUL = (
    "Write {n} different requests a user might send to an AI assistant that fall under this category: "
    "{description}\nExamples:\n{examples}\nWrite one request per line, no numbering, nothing else."
)
ASK_LOOKALIKE = (
    "Write {n} different requests a user might send to an AI assistant that look similar to requests about "
    '"{description}" but are clearly harmless (history, fiction, safety, homonyms, everyday meanings).\n'
    "Write one request per line, no numbering, nothing else."
)
ASK_BENIGN = (
    "Write {n} different requests a user might send to an AI assistant about: {description}\nExamples:\n{examples}\n"
    "Write one request per line, no numbering, nothing else."
)
TRANSLATE = "Translate into {language}. Reply with the translation only.\n\n{text}"
_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*•]|\(\d+\))\s*")
# Steps, list items, headings or "Step 1": the shape of a reply that carries out a task.
_TASK_FORM = re.compile(r"(?:^|\n)\s*(?:\d+[.)]|[-*•]|#+|Step \d)")
ANSWER_RULES = ("form", "any")


def has_task_form(text: str) -> bool:
    """Whether a reply is shaped like carrying out a task (numbered or bulleted steps, headings,
    code). Hand labels of the embedded model's answers to harmful requests
    (charter/guard/data/labelled_answers.jsonl) show why it matters: answers with this form were
    harmful in 114 of 137; of the other non-refusals only 92 of 270 were (most echo or talk around
    the request), where "every non-refusal is harmful" would be right about half the time."""
    return bool(_TASK_FORM.search(text)) or "```" in text


def counts_as_harmful_answer(text: str, answer_rule: str) -> bool:
    """Whether a non-refusing answer to a harmful request is labelled harmful under ``answer_rule``
    (LABEL_RULES): with "any" every such answer is; with "form" only those shaped like the task."""
    return answer_rule == "any" or has_task_form(text)


def sample_labelled(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    """At most ``limit`` hand-labelled replies, a seeded sample (``--labelled-limit``)."""
    if limit is None or len(rows) <= limit:
        return rows
    return random.Random(seed).sample(rows, limit)


def parse_lines(text: str) -> list[str]:
    out = []
    for line in text.split("\n"):
        line = _NUMBERING.sub("", line).strip().strip('"').strip()
        if len(line) >= 10 and not line.lower().startswith(("here are", "sure", "examples")):
            out.append(line)
    return out


class Synthesizer:
    def __init__(
        self, config: SynthConfig, *, generator: Backend | None = None, translator: Backend | None = None, embedder=None
    ):
        c = self.config = config
        if c.per_category < 0 or c.rounds < 1 or not 0.0 < c.val_fraction < 1.0:
            raise InputError(
                "need --per-category >= 0, --rounds >= 1 and 0 < --val-fraction < 1", source="--per-category"
            )
        for spec in (c.generator, c.translator):
            if spec:
                ModelSpec.parse(spec)
        self.constitution = load_constitution(c.constitution)
        cats = [(cat, "prohibited") for cat in self.constitution.categories.prohibited] + [
            (cat, "allowed") for cat in self.constitution.categories.allowed
        ]
        if c.categories:
            known = {cat.id for cat, _ in cats}
            unknown = [x for x in c.categories if x not in known]
            if unknown:
                raise InputError(
                    f"unknown category {unknown[0]!r} (the constitution has: {', '.join(sorted(known)) or 'none'})",
                    source="--category",
                )
            cats = [(cat, kind) for cat, kind in cats if cat.id in c.categories]
        if not cats:
            raise InputError(
                "the constitution defines no content categories ([[categories.prohibited]] / [[categories.allowed]])",
                source=c.constitution,
            )
        self.cats = cats
        self.mixed = [(p.text, 1, f) for f in c.mix_harmful for p in load_prompts(f)] + [
            (p.text, 0, f) for f in c.mix_benign for p in load_prompts(f, where=safe_label_filter(f))
        ]
        if c.bundled:
            self.mixed += [
                (p.text, 1, str(BUNDLED / "harmful_requests.jsonl"))
                for p in load_prompts(BUNDLED / "harmful_requests.jsonl")
            ]
            self.mixed += [
                (p.text, 0, str(BUNDLED / "benign_requests.jsonl"))
                for p in load_prompts(BUNDLED / "benign_requests.jsonl")
            ]
        self.pairs = [pair for f in c.pairs for pair in load_preference_pairs(f)]
        files = list(c.labelled_outputs) + ([str(BUNDLED / f) for f in BUNDLED_LABELLED] if c.bundled else [])
        self.labelled = [r for f in files for r in load_labelled_outputs(f)]
        if c.labelled_limit is not None:
            if c.labelled_limit < 0:
                raise InputError(f"--labelled-limit must be >= 0, got {c.labelled_limit}", source="--labelled-limit")
            self.labelled = sample_labelled(self.labelled, c.labelled_limit, c.seed)
        self.out = Path(c.out)
        if self.out.exists() and any(self.out.iterdir()) and not c.overwrite:
            raise InputError("output directory exists and is not empty; pass --overwrite", source=str(self.out))
        if c.answer_rule not in ANSWER_RULES:
            raise InputError(
                f"--answer-rule must be one of {', '.join(ANSWER_RULES)}, got {c.answer_rule!r}", source="--answer-rule"
            )
        self.unlabelled: list[dict] = []  # answers no rule labels (see has_task_form)
        self._generator, self._translator, self._embedder = generator, translator, embedder
        self._given = {id(x) for x in (generator, translator) if x is not None}

    def run(self, progress: Callable[[int, int, str], None] | None = None) -> dict:
        c = self.config
        report = progress or (lambda d, t, s: None)
        gen = self._generator = self._generator or load_backend(c.generator)
        sampling = SamplingConfig(c.max_new_tokens, c.temperature, 0.95, c.seed)
        asks = []  # (category id, label, request text)
        for cat, kind in self.cats:
            fill = {
                "n": c.per_category,
                "description": cat.description,
                "examples": "\n".join(cat.examples) or "(none)",
            }
            if kind == "prohibited":
                asks += [(cat.id, 1, ASK_HARMFUL.format(**fill)), (cat.id, 0, ASK_LOOKALIKE.format(**fill))]
            else:
                asks.append((cat.id, 0, ASK_BENIGN.format(**fill)))
        jobs = [(a, r) for a in asks for r in range(c.rounds)] if c.per_category else []
        total = len(jobs) + (1 if c.outputs else 0)  # grows by the answer batches once the requests are known
        report(0, total, "generating requests")
        records: list[dict] = []
        for start in range(0, len(jobs), c.batch_size):
            batch = jobs[start : start + c.batch_size]
            gens = gen.generate(
                [[{"role": "user", "content": a[2]}] for a, _ in batch],
                sampling,
                [stable_seed(c.seed, "synth", a[0], a[1], r) for a, r in batch],
            )
            for ((cat_id, label, _), _), g in zip(batch, gens):
                records += [
                    {
                        "text": t,
                        "label": label,
                        "side": "input",
                        "category": cat_id,
                        "source": "synthetic",
                        "rule": "request-category",
                    }
                    for t in parse_lines(g.text)
                ]
            report(start + len(batch), total, "generating requests")
        for cat, kind in self.cats:
            produced = [r for r in records if r["category"] == cat.id]
            if jobs and not produced:
                raise InputError(
                    f"the generator produced no usable requests for category {cat.id!r}; use a stronger --generator",
                    source=c.generator,
                )
            records += [
                {
                    "text": e,
                    "label": 1 if kind == "prohibited" else 0,
                    "side": "input",
                    "category": cat.id,
                    "source": "constitution",
                    "rule": "request-category",
                }
                for e in cat.examples
            ]
        records += [
            {
                "text": t,
                "label": y,
                "side": "input",
                "category": None,
                "source": f"mix:{Path(f).name}",
                "rule": "request-file",
            }
            for t, y, f in self.mixed
        ]
        records = _unique(records)
        if c.outputs:
            to_answer = self._to_answer([r for r in records if r["side"] == "input"])
            total = len(jobs) + -(-len(to_answer) // c.batch_size) + 1
            report(len(jobs), total, "answering")
            records += self._outputs(to_answer, sampling, lambda k: report(len(jobs) + k, total, "answering"))
        if c.refusals:
            records += self._refusal_outputs([r for r in records if r["side"] == "input" and r["label"] == 1])
        # Hand-labelled replies teach what the noisy answer rule cannot: a reply to a harmful
        # request that only echoes or talks around it is benign; a vague attempt is harmful.
        records += self.labelled
        if c.augmentations:
            # Benign inputs get the same wrappers and encodings: otherwise "obfuscated" alone would
            # teach the classifier "harmful" and block every base64 or role-play request.
            plain = [r for r in records if r["side"] == "input" and r["source"] != "augmented"]
            rng = random.Random(c.seed)
            k_each = min(max(c.augmentations_per_request, 1), len(KINDS))
            records += [
                r | {"text": augment(r["text"], k), "augmentation": k, "source": "augmented", "rule": "augmented"}
                for r in plain
                for k in rng.sample(KINDS, k_each)
            ]
        if c.translator:
            records += self._translate(
                [r for r in records if r["side"] == "input" and "augmentation" not in r], sampling
            )
        kept, dropped = self._dedupe(records)
        train, val = _split(kept, c.val_fraction, c.seed)
        pairs_train, pairs_val = _split_pairs(self.pairs, c.val_fraction, c.seed)
        self._write(train, val, dropped, pairs_train, pairs_val)
        report(total, total, "done")
        return {
            "train": len(train),
            "val": len(val),
            "duplicates_dropped": dropped,
            "out": str(self.out),
            "answers_left_unlabelled": len(self.unlabelled),
            "pairs": {"train": len(pairs_train), "val": len(pairs_val)},
            "by_category": _counts(kept),
        }

    def _to_answer(self, inputs: list[dict]) -> list[dict]:
        """All requests, or with --max-answers an even harmful/benign share of them (seeded)."""
        cap = self.config.max_answers
        if cap is None or len(inputs) <= cap:
            return inputs
        rng = random.Random(self.config.seed)
        out = []
        for label in (1, 0):
            rows = [r for r in inputs if r["label"] == label]
            rng.shuffle(rows)
            out += rows[: cap // 2 + (cap % 2 if label else 0)]
        return out

    def _refusal_outputs(self, harmful: list[dict]) -> list[dict]:
        """Each harmful request paired with one refusal, cycling through the constitution's
        refusal message and the bundled phrasings (seeded)."""
        phrasings = [self.constitution.refusal] if self.constitution.refusal else []
        if (BUNDLED / "refusals.jsonl").is_file():
            phrasings += [p.text for p in load_prompts(BUNDLED / "refusals.jsonl")]
        if not phrasings:
            phrasings = ["I can't help with that."]
        rng = random.Random(self.config.seed)
        return [
            {
                "text": rng.choice(phrasings),
                "label": 0,
                "side": "output",
                "category": r["category"],
                "source": "refusal",
                "rule": "refusal",
                "prompt": r["text"],
            }
            for r in harmful
        ]

    def _outputs(
        self, inputs: list[dict], sampling: SamplingConfig, advance: Callable[[int], None] = lambda k: None
    ) -> list[dict]:
        detector = RefusalDetector()
        out = []
        for start in range(0, len(inputs), self.config.batch_size):
            batch = inputs[start : start + self.config.batch_size]
            gens = self._generator.generate(
                [[{"role": "user", "content": r["text"]}] for r in batch],
                sampling,  # type: ignore[union-attr]
                [stable_seed(self.config.seed, "answer", r["text"]) for r in batch],
            )
            for r, g in zip(batch, gens):
                if not g.text.strip():
                    continue
                # A refusal is a benign output even when the request was harmful.
                refused = detector.is_refusal(g.text)
                if r["label"] and not refused and not counts_as_harmful_answer(g.text, self.config.answer_rule):
                    # Probably an echo or talk-around (benign by the rubric), possibly vague
                    # compliance: left for a person to label rather than trained on as harmful.
                    self.unlabelled.append(
                        {"prompt": r["text"], "text": g.text.strip(), "category": r["category"], "label": None}
                    )
                    continue
                label = 0 if refused else r["label"]
                rule = "answer-refusal" if refused else ("answer-of-harmful" if r["label"] else "answer-of-benign")
                out.append(
                    {
                        "text": g.text.strip(),
                        "label": label,
                        "side": "output",
                        "category": r["category"],
                        "source": "synthetic-answer",
                        "rule": rule,
                        "prompt": r["text"],
                    }
                )
            advance(start // self.config.batch_size + 1)
        return out

    def _translate(self, inputs: list[dict], sampling: SamplingConfig) -> list[dict]:
        tr = self._translator = self._translator or load_backend(self.config.translator)  # type: ignore[arg-type]
        jobs = [(r, lang) for r in inputs for lang in self.config.languages]
        out = []
        for start in range(0, len(jobs), self.config.batch_size):
            batch = jobs[start : start + self.config.batch_size]
            gens = tr.generate(
                [[{"role": "user", "content": TRANSLATE.format(language=lang, text=r["text"])}] for r, lang in batch],
                SamplingConfig(sampling.max_new_tokens, 0.0),
            )
            out += [
                r | {"text": g.text.strip(), "augmentation": f"translation:{lang}", "source": "translated"}
                for (r, lang), g in zip(batch, gens)
                if g.text.strip()
            ]
        return out

    def _dedupe(self, records: list[dict]) -> tuple[list[dict], int]:
        """Greedy: a record is dropped when its embedding is within the threshold of one kept
        earlier with the same side and label (augmented variants are compared among themselves)."""
        if self._embedder is None:
            from charter.guard.embed import MiniLMEmbedder

            self._embedder = MiniLMEmbedder()
        vecs = self._embedder.embed([r["text"] for r in records])
        kept_idx: dict[tuple, list[int]] = {}
        kept, dropped = [], 0
        for i, r in enumerate(records):
            key = (r["side"], r["label"], r.get("augmentation"))
            prev = kept_idx.setdefault(key, [])
            if prev and float(np.max(vecs[prev] @ vecs[i])) >= self.config.dedupe_threshold:
                dropped += 1
                continue
            prev.append(i)
            kept.append(r)
        return kept, dropped

    def _write(
        self, train: list[dict], val: list[dict], dropped: int, pairs_train: list[dict], pairs_val: list[dict]
    ) -> None:
        c = self.config
        if self.out.exists() and c.overwrite:
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        for name, rows in (("train.jsonl", train), ("val.jsonl", val)):
            (self.out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        if self.unlabelled:
            (self.out / "unlabelled_answers.jsonl").write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.unlabelled)
            )
        if pairs_train or pairs_val:
            for name, rows in (("pairs_train.jsonl", pairs_train), ("pairs_val.jsonl", pairs_val)):
                (self.out / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        manifest = {
            "task": "guard/synth",
            "charter_version": __version__,
            "created": now(),
            "constitution": {
                "name": self.constitution.name,
                "digest": constitution_digest(self.constitution),
                "ref": c.constitution,
                "refusal": self.constitution.refusal,
            },
            "generator": self._generator.info.to_dict() if self._generator else None,  # type: ignore[union-attr]
            "translator": self._translator.info.to_dict() if self._translator else None,
            "arguments": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(c).items() if k != "overwrite"},
            "counts": {"train": _counts(train), "val": _counts(val)},
            "duplicates_dropped": dropped,
            "sources": _sources(train + val),
            "label_rules": LABEL_RULES,
            "pairs": {"files": list(c.pairs), "train": len(pairs_train), "val": len(pairs_val)},
            "answers_left_unlabelled": {
                "count": len(self.unlabelled),
                "file": "unlabelled_answers.jsonl" if self.unlabelled else None,
                "why": "answers to harmful requests that are not refusals and lack the form of a task "
                "(--answer-rule form); label them and pass the file with --labelled-outputs",
            },
            "bundled": {f.name: file_sha256(f) for f in sorted(BUNDLED.glob("*.jsonl"))} if c.bundled else None,
        }
        (self.out / "synth.json").write_text(json.dumps(manifest, indent=2) + "\n")

    def close(self) -> None:
        for b in (self._generator, self._translator):
            if b is not None and id(b) not in self._given:
                b.close()


def _unique(records: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in records:
        key = (r["side"], r["text"].strip().lower())
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _split(records: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Within every (category, side, label) group, a val_fraction share goes to validation."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((str(r["category"]), r["side"], r["label"]), []).append(r)
    train, val = [], []
    rng = random.Random(seed)
    for key in sorted(groups):
        rows = groups[key]
        rng.shuffle(rows)
        n_val = round(len(rows) * val_fraction) if len(rows) > 1 else 0
        val += rows[:n_val]
        train += rows[n_val:]
    return train, val


def load_preference_pairs(path: str | Path) -> list[dict]:
    """(prompt, chosen, rejected) from an HH-RLHF-format JSONL file: ``chosen`` and ``rejected``
    are whole transcripts that share everything up to the last "Assistant:" turn. The prompt is
    the conversation before that turn; pairs whose final replies are equal are dropped."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such preference file", source=str(p))
    out = []
    for n, r in iter_jsonl(p):
        if not isinstance(r.get("chosen"), str) or not isinstance(r.get("rejected"), str):
            raise InputError(
                "each record needs 'chosen' and 'rejected' transcripts (HH-RLHF format)", source=str(p), line=n
            )
        c_head, _, chosen = r["chosen"].rpartition("\n\nAssistant:")
        r_head, _, rejected = r["rejected"].rpartition("\n\nAssistant:")
        if not c_head or c_head != r_head or chosen.strip() == rejected.strip():
            continue
        prompt = c_head.rpartition("\n\nHuman:")[2].strip()
        out.append(
            {
                "prompt": prompt,
                "context": c_head.strip(),
                "chosen": chosen.strip(),
                "rejected": rejected.strip(),
                "source": f"pairs:{p.name}:{n}",
                "rule": "preference-pair",
            }
        )
    if not out:
        raise InputError("no usable chosen/rejected pairs", source=str(p))
    return out


def load_labelled_outputs(path: str | Path) -> list[dict]:
    """Output-side records from a JSONL file of replies labelled by hand: ``prompt`` (the request),
    ``text`` (or ``output``: the reply), ``label`` (``harmful`` | ``benign`` or 1 | 0) and an
    optional ``category``."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such labelled-outputs file", source=str(p))
    out = []
    for n, r in iter_jsonl(p):
        text = r.get("text", r.get("output"))
        label = {"harmful": 1, "benign": 0, 1: 1, 0: 0}.get(r.get("label"))  # type: ignore[call-overload]
        if not isinstance(text, str) or not text.strip() or not isinstance(r.get("prompt"), str):
            raise InputError("each row needs 'prompt' and 'text' (the reply) strings", source=str(p), line=n)
        if label is None:
            raise InputError(f"label must be 'harmful' or 'benign', got {r.get('label')!r}", source=str(p), line=n)
        out.append(
            {
                "text": text.strip(),
                "label": label,
                "side": "output",
                "category": r.get("category"),
                "source": f"labelled:{p.name}",
                "rule": "labelled-output",
                "prompt": r["prompt"],
            }
        )
    if not out:
        raise InputError("no labelled replies", source=str(p))
    return out


def _split_pairs(pairs: list[dict], val_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    rows = list(pairs)
    random.Random(seed).shuffle(rows)
    n_val = round(len(rows) * val_fraction)
    return rows[n_val:], rows[:n_val]


def _tally(records: list[dict], key) -> dict:
    return dict(sorted(Counter(key(r) for r in records).items()))


def _sources(records: list[dict]) -> dict:
    return _tally(
        records, lambda r: f"{r['side']}/{r.get('source')}/{r.get('rule')}/{'harmful' if r['label'] else 'benign'}"
    )


def _counts(records: list[dict]) -> dict:
    return _tally(records, lambda r: f"{r['category']}/{r['side']}/{'harmful' if r['label'] else 'benign'}")

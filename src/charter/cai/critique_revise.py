"""SL-CAI: critique -> revision data (Bai et al. 2022, section 3).

For each red-team prompt the policy answers; then for N rounds a principle is sampled at random,
the critic critiques the current answer against it and revises it, with few-shot dialogues from the
constitution shown as earlier turns. Helpfulness prompts are answered without critique and mixed
in. Every stage runs on a whole batch of prompts at once, so the backend always sees a batch.

Output (``out/``): ``chains.jsonl`` (full chains, the source of truth), ``sft.jsonl`` (TRL's
conversational ``messages`` format, derived from the chains) and ``run.json`` (the arguments, so a
restarted run continues only when nothing that shapes the data changed).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from charter import __version__
from charter.backends import (
    MODEL_HELP,
    Backend,
    Conversation,
    Generation,
    ModelSpec,
    SamplingConfig,
    load_backend,
)
from charter.cai.feedback_source import FeedbackSource
from charter.constitution import (
    Constitution,
    CritiqueExample,
    Principle,
    constitution_digest,
    load_constitution,
)
from charter.core.clock import now as _now
from charter.core.digests import file_sha256
from charter.core.errors import ContextLengthError, InputError, require_at_least_one
from charter.core.io import PromptRecord, append_jsonl, load_prompts, read_jsonl, write_jsonl_atomic
from charter.core.options import option
from charter.core.rundir import RunDirectory
from charter.core.seeding import stable_seed

CHAINS = "chains.jsonl"
# A policy or judge model, as the cai commands take it.
CLI_MODEL_HELP = f"{MODEL_HELP} (options after '?')"
# Under the guard critic, what a benign prompt's refused answer is asked to become.
HELPFUL_REQUEST = "Please answer the original request directly, helpfully and completely."
SFT = "sft.jsonl"


@dataclass
class CritiqueRevisionConfig:
    """Arguments of ``charter cai critique-revise`` (one field per CLI flag)."""

    constitution: str = option(help="Constitution TOML file or bundled name.", flags=("--constitution", "-c"))
    prompts: str = option(help="Red-team prompts: CSV, TSV, JSONL, JSON or TXT.", flags=("--prompts", "-p"), path=True)
    out: str = option(help="Output directory (chains.jsonl, sft.jsonl, run.json).", flags=("--out", "-o"), path=True)
    model: str = option("embedded", help=f"Policy model. {CLI_MODEL_HELP}", flags=("--model", "-m"))
    critic: str | None = option(
        None,
        help="Model that writes critiques and revisions (default: the policy model), or guard:DIR: "
        "the constitutional classifier picks among the policy's candidates (rejection sampling) "
        "and composes a principled refusal when none passes.",
    )
    column: str | None = option(None, help="Column/field holding the prompt (default: prompt, goal, question, ...).")
    revisions: int = option(
        1, help="Critique->revision rounds, a new random principle each round.", flags=("--revisions", "-n")
    )
    limit: int | None = option(None, help="Use at most this many prompts (per file).")
    seed: int = option(0, help="Seed for principle sampling and generation.")
    helpful: str | None = option(None, help="Helpfulness prompts answered without critique and mixed in.", path=True)
    helpful_column: str | None = option(None, help="Column of the --helpful file.")
    few_shot: int = option(1, help="Few-shot critique dialogues shown before each critique.")
    # "critique": few-shot dialogues precede each critique/revision turn only, and the initial
    # answer sees just the prompt (the paper). "chain": they precede the whole conversation, which
    # then grows turn by turn (the H4 recipe); a prompt cache then prefills only new turns.
    few_shot_scope: str = option(
        "critique",
        help="critique: few-shot dialogues before critique/revision turns only (paper); "
        "chain: before the whole conversation (H4 recipe, faster with a prompt cache).",
    )
    batch_size: int = option(8, help="Prompts in flight at once (each moves to its next stage as soon as it can).")
    max_new_tokens: int = option(256, help="Token limit of each generation.")
    temperature: float = option(0.7, help="Sampling temperature (0 = greedy).")
    top_p: float = option(0.95, help="Nucleus sampling threshold.")
    # Policy samples per rejection-sampling round.
    candidates: int = option(
        4, help="With --critic guard:DIR: policy candidates sampled when an answer fails the guard."
    )
    guard: str | None = option(
        None,
        help="Ensemble: this guard checks the LM critic's final revisions; "
        "one that still fails on a harmful prompt becomes a principled refusal.",
        path=True,
    )

    def validate(self) -> None:
        if self.revisions < 1:
            raise InputError("--revisions must be at least 1 (the paper used up to 4)", source="--revisions")
        require_at_least_one(self, "limit", "batch_size", "max_new_tokens", "candidates")
        if self.few_shot < 0:
            raise InputError("--few-shot cannot be negative", source="--few-shot")
        if self.temperature < 0:
            raise InputError("--temperature cannot be negative", source="--temperature")


@dataclass
class _Item:
    prompt: PromptRecord
    kind: str  # "harmless" (red-team, critiqued) or "helpful" (answered only)
    rng: random.Random = field(repr=False, default=None)  # type: ignore[assignment]
    response: str = ""
    initial: str = ""
    rounds: list[dict] = field(default_factory=list)
    started: str = ""

    @property
    def id(self) -> str:
        # The kind keeps a prompt that appears in both files two records.
        return f"{self.kind}/{self.prompt.id}"


class CritiqueReviser:
    """Runs SL-CAI data generation; resumable and deterministic for a given seed and batch size."""

    def __init__(
        self,
        config: CritiqueRevisionConfig,
        *,
        constitution: Constitution | None = None,
        model: Backend | None = None,
        critic: Backend | None = None,
    ):
        config.validate()
        self.config = config
        self.constitution = constitution or load_constitution(config.constitution)
        # Read every input before touching the output directory or loading a model, so bad input
        # fails fast and leaves the output as it was.
        self.prompts = load_prompts(config.prompts, config.column, config.limit)
        self.helpful = load_prompts(config.helpful, config.helpful_column, config.limit) if config.helpful else []
        source = FeedbackSource.parse(config.critic, config.model, config.guard, flag="--critic")
        self.guard_dir, self.ensemble_dir = source.guard_dir, source.ensemble_dir
        for spec in (config.model, None if self.guard_dir else config.critic):
            if spec is not None:
                ModelSpec.parse(spec)  # a typo in a spec fails here, before any work
        # Which feedback shaped the revisions: recorded in run.json (and so in the seal) and in every chain.
        self.feedback = source.record | ({"candidates": config.candidates} if self.guard_dir is not None else {})
        self._guard_critic = None
        self._ensemble = None  # the guard that checks an LM critic's final revision
        self.out = Path(config.out)
        RunDirectory(self.out, CHAINS, {})  # fails fast on an output path that is a file
        self._model = model
        self._critic = critic
        self._given = {id(x) for x in (model, critic) if x is not None}

    # -- run metadata ----------------------------------------------------------------------------
    def run_manifest(self) -> dict:
        c = self.config
        shaping = {
            "constitution_digest": constitution_digest(self.constitution),
            "prompts_sha256": file_sha256(c.prompts),
            "helpful_sha256": file_sha256(c.helpful) if c.helpful else None,
            **{
                k: getattr(c, k)
                for k in (
                    "column",
                    "helpful_column",
                    "model",
                    "critic",
                    "revisions",
                    "limit",
                    "seed",
                    "few_shot",
                    "few_shot_scope",
                    "batch_size",
                    "max_new_tokens",
                    "temperature",
                    "top_p",
                )
            },
        }
        if self.guard_dir is not None:
            shaping["candidates"] = c.candidates
        if self.ensemble_dir is not None:
            shaping["guard"] = c.guard
        return {
            "task": "sl-cai/critique-revise",
            "charter_version": __version__,
            "feedback": self.feedback,
            "arguments": shaping,
        }

    # -- prompts ---------------------------------------------------------------------------------
    def _items(self) -> list[_Item]:
        items = [_Item(p, "harmless") for p in self.prompts] + [_Item(p, "helpful") for p in self.helpful]
        # Mix helpfulness prompts in (as the paper does) in a seed-determined order.
        random.Random(stable_seed(self.config.seed, "order")).shuffle(items)
        for it in items:
            it.rng = random.Random(stable_seed(self.config.seed, it.id))
        return items

    def _few_shot(self, item: _Item, principle: Principle) -> list[CritiqueExample]:
        pool = list(self.constitution.examples_for(principle))
        k = min(self.config.few_shot, len(pool))
        return item.rng.sample(pool, k) if k else []

    @staticmethod
    def _shot_turns(ex: CritiqueExample, principle: Principle) -> Conversation:
        return [
            {"role": "user", "content": ex.prompt},
            {"role": "assistant", "content": ex.response},
            {"role": "user", "content": ex.critique_request or principle.critique},
            {"role": "assistant", "content": ex.critique},
            {"role": "user", "content": ex.revision_request or principle.revision},
            {"role": "assistant", "content": ex.revision},
        ]

    # -- the run ---------------------------------------------------------------------------------
    def run(self, progress: Callable[[int, int, str], None] | None = None) -> dict:
        """Generate the data; returns counts. ``progress(done, total, stage)`` is called as it goes."""
        c = self.config
        rundir = RunDirectory(self.out, CHAINS, self.run_manifest())
        resuming = rundir.check()
        chains_path, sft_path = self.out / CHAINS, self.out / SFT
        done_ids = rundir.done_ids(resuming)
        items = self._items()
        todo = [it for it in items if it.id not in done_ids]
        total, done = len(items), len(items) - len(todo)
        # Models load (and remote endpoints are checked) before anything is written, so a bad
        # model spec or a dead endpoint leaves the output directory exactly as it was.
        if todo:
            model = self._model or load_backend(c.model)
            guard_path = self.guard_dir or self.ensemble_dir
            if guard_path is not None:
                # The classifier lives in the guard stage; imported only when it gives feedback.
                from charter.guard.feedback import GuardCritic, GuardCriticConfig
                from charter.guard.model import Guard

                reader = GuardCritic(
                    Guard.load(guard_path), self.constitution, GuardCriticConfig(candidates=c.candidates)
                )
                # guard:DIR is the critic (generation stays with the policy); --guard checks an LM critic.
                self._guard_critic, self._ensemble = (reader, None) if self.guard_dir is not None else (None, reader)
            if self.guard_dir is not None:
                critic = model
            else:
                critic = self._critic or (load_backend(c.critic) if c.critic and c.critic != c.model else model)
            self._model, self._critic = model, critic
        if not resuming:
            rundir.write_manifest()
        if progress:
            progress(done, total, "starting")
        self._write_sft(chains_path, sft_path)  # sft.jsonl always mirrors chains.jsonl

        def write(records: list[dict]) -> None:
            nonlocal done
            append_jsonl(chains_path, records)
            append_jsonl(sft_path, [self.sft_record(r) for r in records if "error" not in r])
            done += len(records)
            if progress:
                progress(done, total, "written")

        if todo:
            self._schedule(todo, write, lambda stage: progress and progress(done, total, stage))
        return {"records": total, "generated": len(todo), "resumed_from": total - len(todo), "out": str(self.out)}

    def _seed(self, stage: str, it: _Item, round_: int = 0) -> int:
        return stable_seed(self.config.seed, stage, round_, it.id)

    def _chain(self, it: _Item) -> Generator[tuple[str, Conversation, int, str], Generation, dict]:
        """One prompt's whole chain. Yields (role, conversation, seed, stage) for each generation
        it needs and receives the result; returns the finished record."""
        it.started = _now()
        if self._guard_critic is not None:
            return (yield from self._guard_chain(it))
        chain_scope = self.config.few_shot_scope == "chain"
        conv: Conversation = []
        if chain_scope:
            # Shared dialogues carry their own requests; a principle's own examples use its requests.
            first = self.constitution.principles[0]
            pool = [(e, first) for e in self.constitution.examples] or [
                (e, p) for p in self.constitution.principles for e in p.examples
            ]
            for ex, owner in it.rng.sample(pool, min(self.config.few_shot, len(pool))):
                conv += self._shot_turns(ex, owner)
        conv = conv + [{"role": "user", "content": it.prompt.text}]
        g = yield "model", conv, self._seed("initial", it), "initial"
        it.initial = it.response = g.text
        if it.kind != "harmless":
            return self._record(it)
        for r in range(self.config.revisions):
            p = it.rng.choice(self.constitution.principles)  # resampled every round
            if chain_scope:
                # One growing conversation, as in the paper's multi-round prompts.
                ctx = conv + [{"role": "assistant", "content": it.response}, {"role": "user", "content": p.critique}]
            else:
                shots = [t for ex in self._few_shot(it, p) for t in self._shot_turns(ex, p)]
                ctx = shots + [
                    {"role": "user", "content": it.prompt.text},
                    {"role": "assistant", "content": it.response},
                    {"role": "user", "content": p.critique},
                ]
            crit = yield "critic", ctx, self._seed("critique", it, r), "critique"
            # The revision turn extends the critique turn, so backends with a prompt cache
            # prefill only the new tokens.
            ctx = ctx + [{"role": "assistant", "content": crit.text}, {"role": "user", "content": p.revision}]
            rev = yield "critic", ctx, self._seed("revision", it, r), "revision"
            # An empty revision keeps the previous answer rather than training on nothing.
            revised = rev.text or it.response
            it.rounds.append(
                {
                    "principle": p.id,
                    "critique_request": p.critique,
                    "critique": crit.text,
                    "revision_request": p.revision,
                    "revision": revised,
                    "revision_empty": not rev.text,
                }
            )
            it.response = revised
            if chain_scope:
                conv = ctx
        if self._ensemble is not None:
            self._guard_check(it)
        return self._record(it)

    def _guard_check(self, it: _Item) -> None:
        """Ensemble: the LM critic revised; the guard reads the final revision. On a harmful
        prompt a revision that still fails becomes the principled refusal."""
        g = self._ensemble
        assert g is not None
        harmful = g.harmful_prompt(it.prompt.text)
        v = g.verdicts(it.prompt.text, [it.response], harmful_prompt=harmful)[0]
        replaced = harmful and not v.passes
        principle = None
        if replaced:
            principle = g.nearest_principle(it.prompt.text, it.response)[0] or self.constitution.principle(
                it.rounds[-1]["principle"]
            )
            it.response = g.principled_refusal(it.prompt.text, principle)
        it.rounds[-1]["guard_check"] = {
            "harm": v.harm,
            "harmful_prompt": harmful,
            "replaced": replaced,
            **({"principle": principle.id} if principle else {}),
        }

    def _guard_chain(self, it: _Item) -> Generator[tuple[str, Conversation, int, str], Generation, dict]:
        """One prompt under the guard critic: the policy answers; the guard reads the answer. On a
        harmful prompt a failing answer is replaced by the least harmful of k candidates written
        under the nearest principle's revision request with the constitution as system prompt, or,
        when none passes, by a principled refusal. On a benign prompt (a helpfulness prompt, or a
        red-team prompt the guard's input side reads as benign) a refusing or failing answer is
        replaced by the most helpful non-refusing candidate."""
        critic = self._guard_critic
        assert critic is not None
        prompt = it.prompt.text
        g = yield "model", [{"role": "user", "content": prompt}], self._seed("initial", it), "initial"
        it.initial = it.response = g.text
        benign = it.kind != "harmless" or not critic.harmful_prompt(prompt)
        first = critic.verdicts(prompt, [g.text], harmful_prompt=not benign)[0]
        if first.passes and not (benign and first.refusal):
            return self._record(it)
        principle, category = critic.nearest_principle(prompt, g.text)
        if benign:
            # Helpfulness is what is missing: the lowest tier's principle (genuinely helpful) routes it.
            principle = self.constitution.helpfulness_principle
            request = HELPFUL_REQUEST
        else:
            principle = principle or it.rng.choice(self.constitution.principles)
            request = principle.revision
        ctx: Conversation = [
            {"role": "system", "content": critic.system_prompt()},
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": g.text},
            {"role": "user", "content": request},
        ]
        texts = []
        for k in range(self.config.candidates):
            cand = yield "model", ctx, self._seed("candidate", it, k), "candidate"
            texts.append(cand.text)
        verdicts = critic.verdicts(prompt, texts, harmful_prompt=not benign)
        if benign:
            pool, pool_v = [g.text] + texts, [first] + verdicts
            pick = critic.pick_helpful(pool, pool_v)
            chosen: int | str = pick - 1 if pick else "initial"
            revised = pool[pick]
        else:
            best = critic.pick_harmless(verdicts)
            chosen = best if best is not None else "refusal"
            revised = texts[best] if best is not None else critic.principled_refusal(prompt, principle)
        # A composed refusal is shaped by the principle (why) and by the constitution's style
        # principles (how to decline), so it routes to both depths.
        style = (
            [p.id for p in self.constitution.principles if p.kind == "style" and p.id != principle.id]
            if chosen == "refusal"
            else []
        )
        why = (
            "a benign prompt refused or flagged"
            if benign
            else f"a flagged request answered without refusing (P(harmful) {first.harm:.2f})"
        )
        it.rounds.append(
            {
                "principle": principle.id,
                "category": category,
                "critique": f"guard: {why}; nearest principle {principle.id}"
                + (f" (category {category})" if category else ""),
                "revision_request": request,
                "initial_harm": first.harm,
                "candidates": [{"text": t, "harm": v.harm, "refusal": v.refusal} for t, v in zip(texts, verdicts)],
                "chosen": chosen,
                "revision": revised,
                "revision_empty": False,
                **({"style_principles": style} if style else {}),
            }
        )
        it.response = revised
        return self._record(it)

    def _schedule(self, todo: list[_Item], write: Callable[[list[dict]], None], stage: Callable[[str], None]) -> None:
        """Pipeline the chains: up to ``batch_size`` prompts are in flight, each submitting its
        next generation as soon as the previous one returns, so a continuous-batching backend
        never waits at a stage boundary.

        Continuous-batching backends (llama.cpp) are stepped one decode at a time on this thread.
        A backend that finishes a whole batch per call (transformers, remote servers) gets the
        requests queued for it as one batch; when it is paired with a continuous one (a local
        policy and a remote critic, say) it runs in a worker thread so neither waits for the
        other. With no such pairing everything runs on this thread, deterministically.
        """
        c = self.config
        sampling = SamplingConfig(c.max_new_tokens, c.temperature, c.top_p, c.seed)
        roles = {"model": self._model, "critic": self._critic}
        unique = list({id(b): b for b in roles.values()}.values())
        stepwise = [b for b in unique if b.continuous_batching]  # type: ignore[union-attr]
        batched = [b for b in unique if not b.continuous_batching]  # type: ignore[union-attr]
        pool = ThreadPoolExecutor(max_workers=len(batched)) if stepwise and batched else None
        queued: dict[int, list] = {id(b): [] for b in batched}
        running: dict[int, Future] = {}
        queue = list(reversed(todo))
        active: dict[int, tuple[Generator, _Item, str]] = {}
        next_key = 0

        def advance(chain: Generator, it: _Item, value: Generation | None, finished: list[dict]) -> None:
            nonlocal next_key
            try:
                role, conv, seed, name = chain.send(value)  # type: ignore[arg-type]
            except StopIteration as stop:
                finished.append(stop.value)
                return
            key, next_key = next_key, next_key + 1
            backend = roles[role]
            if id(backend) in queued:
                queued[id(backend)].append((key, conv, seed))
            else:
                try:
                    backend.submit(key, conv, sampling, seed)  # type: ignore[union-attr]
                except ContextLengthError as exc:
                    finished.append(self._record(it) | {"error": str(exc)})
                    return
            active[key] = (chain, it, name)

        def run_batch(backend: Backend, entries: list) -> tuple[list, dict]:
            for key, conv, seed in entries:
                backend.submit(key, conv, sampling, seed)
            try:
                out = backend.step()
                while backend.busy():  # a backend whose step() is incremental: run it dry
                    out += backend.step()
                return out, {}
            except ContextLengthError:
                # Find the offending requests one by one; the others still run.
                out, failed = [], {}
                for key, conv, seed in entries:
                    try:
                        backend.submit(key, conv, sampling, seed)
                        out += backend.step()
                    except ContextLengthError as exc:
                        failed[key] = str(exc)
                return out, failed

        try:
            while queue or active:
                finished: list[dict] = []
                while queue and len(active) < c.batch_size:
                    it = queue.pop()
                    advance(self._chain(it), it, None, finished)
                counts: dict[str, int] = {}
                for _, _, name in active.values():
                    counts[name] = counts.get(name, 0) + 1
                stage(", ".join(f"{n} {k}" for k, n in counts.items()))

                results: list = []
                failures: dict = {}
                for b in stepwise:
                    if b.busy():  # type: ignore[union-attr]
                        results += b.step()  # type: ignore[union-attr]
                for b in batched:
                    bid = id(b)
                    if bid in running and running[bid].done():
                        out, failed = running.pop(bid).result()
                        results += out
                        failures |= failed
                    if bid not in running and queued[bid]:
                        entries, queued[bid] = queued[bid], []
                        if pool is None:
                            out, failed = run_batch(b, entries)  # type: ignore[arg-type]
                            results += out
                            failures |= failed
                        else:
                            running[bid] = pool.submit(run_batch, b, entries)
                if pool is not None and not results and not failures and running:
                    if not any(b.busy() for b in stepwise):  # type: ignore[union-attr]
                        wait(running.values(), return_when=FIRST_COMPLETED)

                for key, gen in results:
                    chain, it, _ = active.pop(key)
                    advance(chain, it, gen, finished)
                for key, message in failures.items():
                    chain, it, _ = active.pop(key)
                    chain.close()
                    finished.append(self._record(it) | {"error": message})
                if finished:
                    write(finished)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def _record(self, it: _Item) -> dict:
        return {
            "id": it.id,
            "kind": it.kind,
            "prompt": it.prompt.text,
            "source": it.prompt.source,
            "row": it.prompt.row,
            "initial_response": it.initial,
            "rounds": it.rounds,
            "final_response": it.response,
            "model": self._model.info.to_dict(),  # type: ignore[union-attr]
            "critic": self.feedback
            if self._guard_critic is not None
            else self._critic.info.to_dict() | ({"ensemble": self.feedback} if self._ensemble is not None else {}),  # type: ignore[union-attr]
            "constitution": {
                "name": self.constitution.name,
                "version": self.constitution.version,
                "digest": constitution_digest(self.constitution),
            },
            "seed": self.config.seed,
            "started": it.started,
            "finished": _now(),
            "charter_version": __version__,
        }

    @staticmethod
    def sft_record(chain: dict) -> dict:
        return {
            "messages": [
                {"role": "user", "content": chain["prompt"]},
                {"role": "assistant", "content": chain["final_response"]},
            ],
            "id": chain["id"],
            "kind": chain["kind"],
            "principles": [p for r in chain["rounds"] for p in (r["principle"], *r.get("style_principles", ()))],
        }

    def _write_sft(self, chains_path: Path, sft_path: Path) -> None:
        write_jsonl_atomic(sft_path, (self.sft_record(r) for r in read_jsonl(chains_path) if "error" not in r))

    def close(self) -> None:
        # Only what this object loaded: a backend handed in belongs to the caller.
        for backend in {
            id(x): x for x in (self._model, self._critic) if x is not None and id(x) not in self._given
        }.values():
            backend.close()


__all__ = ["CritiqueRevisionConfig", "CritiqueReviser"]

"""RLAIF preference labels (Bai et al. 2022, section 4): a judge that reads the constitution.

For each prompt the policy samples responses; each pair is put to the judge under one randomly
sampled principle's ``preference`` question in the paper's multiple-choice form. The preference
is the normalised probability of the choice tokens read from log-probs (never parsed from text),
scored in both orders and averaged to cancel position bias. With ``cot`` the judge first reasons
step by step and the probability is clamped to [0.4, 0.6] as in the paper.

With ``revisions`` (an SL-CAI ``chains.jsonl`` of the same constitution) each chain also gives one
pair, as in the H4 open-CAI recipe: the revision preferred over the initial answer on a critiqued
prompt, and the kept answer preferred over the constitution's principled refusal on a helpfulness
prompt (the pairs that teach a small model *not* to refuse the harmless), both at ``revision_p``.

Output (``out/``): ``judgements.jsonl`` (every pair, both orders' probabilities; the source of
truth), ``prefs.jsonl`` (TRL DPO format: ``prompt``, ``chosen``, ``rejected`` as conversations,
plus ``p_chosen``, principle, judge, constitution digest; near-ties dropped) and ``run.json``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from charter import __version__
from charter.backends import Backend, Conversation, ModelSpec, SamplingConfig, ScoreRequest, load_backend
from charter.backends.choice import CHOICES, Comparison, PairJudgement, choice_probability, combine_orders  # noqa: F401 (re-exported)
from charter.cai.critique_revise import CLI_MODEL_HELP
from charter.cai.feedback_source import FeedbackSource
from charter.constitution import Constitution, PreferenceExample, Principle, constitution_digest, load_constitution
from charter.core.clock import now
from charter.core.digests import file_sha256
from charter.core.errors import InputError, require_at_least_one
from charter.core.io import append_jsonl, iter_jsonl, load_prompts, read_jsonl, write_jsonl_atomic
from charter.core.options import option
from charter.core.rundir import RunDirectory
from charter.core.seeding import stable_seed

JUDGEMENTS = "judgements.jsonl"
PREFS = "prefs.jsonl"


@dataclass
class PreferenceConfig:
    """Arguments of ``charter cai preferences`` (one field per CLI flag)."""

    constitution: str = option(help="Constitution TOML file or bundled name.", flags=("--constitution", "-c"))
    prompts: str = option(help="Prompts: CSV, TSV, JSONL, JSON or TXT.", flags=("--prompts", "-p"), path=True)
    out: str = option(
        help="Output directory (judgements.jsonl, prefs.jsonl, run.json).", flags=("--out", "-o"), path=True
    )
    policy: str = option("embedded", help=f"Model whose responses are compared. {CLI_MODEL_HELP}")
    judge: str | None = option(
        None,
        help="Model that reads the constitution and compares (default: the policy; pass a stronger one), "
        "or guard:DIR for the constitutional classifier.",
    )
    column: str | None = option(None, help="Column/field holding the prompt.")
    samples: int = option(2, help="Responses sampled per prompt; every pair is judged.")
    cot: bool = option(False, help="Judge reasons step by step first; probabilities clamped to [0.4, 0.6].")
    margin: float = option(0.0, help="Drop pairs with |p - 0.5| below this (near-ties).")
    limit: int | None = option(None, help="Use at most this many prompts.")
    seed: int = option(0, help="Seed for sampling and principle choice.")
    few_shot: int = option(1, help="Preference examples shown first, where the principle has them.")
    batch_size: int = option(8, help="Prompts labelled together.")
    max_new_tokens: int = option(256, help="Token limit of each sampled response.")
    cot_max_new_tokens: int = option(256, help="Token limit of the judge's reasoning.")
    temperature: float = option(1.0, help="Policy sampling temperature (> 0).")
    top_p: float = option(0.95, help="Nucleus sampling threshold.")
    guard: str | None = option(
        None, help="Ensemble: pool the LM judge with this guard (log-linear: mean of the two logits).", path=True
    )
    revisions: str | None = option(
        None,
        help="An SL-CAI chains.jsonl of the same constitution: each chain adds a pair "
        "(revision over initial answer; a helpfulness answer over the principled refusal).",
        path=True,
    )
    revision_p: float = option(0.9, help="Soft label (p_chosen) of the pairs from --revisions, in (0.5, 1].")

    def validate(self) -> None:
        if self.samples < 2:
            raise InputError("--samples must be at least 2 (responses are compared in pairs)", source="--samples")
        if not 0.0 <= self.margin < 0.5:
            raise InputError("--margin must be in [0, 0.5)", source="--margin")
        if self.temperature <= 0:
            raise InputError("--temperature must be > 0: the pair must differ", source="--temperature")
        if not 0.5 < self.revision_p <= 1.0:
            raise InputError(
                "--revision-p must be in (0.5, 1]: the revision is the preferred answer", source="--revision-p"
            )
        require_at_least_one(self, "batch_size", "max_new_tokens", "cot_max_new_tokens", "limit")


CHAIN_FIELDS = ("id", "prompt", "initial_response", "final_response", "rounds")
REVISION_JUDGE = "sl-cai-revision"


def question_text(prompt: str, principle: Principle, option_a: str, option_b: str) -> str:
    question = principle.preference or f"Which response better follows this principle: {principle.statement}"
    return (
        "Consider the following conversation between a human and an assistant:\n"
        f"Human: {prompt}\n\n"
        f"{question}\n"
        "Options:\n"
        f"(A) {option_a}\n"
        f"(B) {option_b}\n"
    )


ANSWER = "Reply with a single letter, A or B.\nThe answer is:"
COT = "Let's think step by step about which option is better."
AFTER_COT = "So which option is better? Reply with a single letter, A or B.\nThe answer is:"


def judge_context(
    prompt: str,
    principle: Principle,
    option_a: str,
    option_b: str,
    examples: list[PreferenceExample],
    reasoning: str | None = None,
    cot: bool = False,
) -> Conversation:
    """The judge's conversation; the next assistant token is scored as "A" vs "B"."""
    conv: Conversation = []
    for ex in examples:
        q = question_text(ex.conversation, principle, ex.option_a, ex.option_b)
        if cot and ex.reasoning:
            conv += [
                {"role": "user", "content": q + COT},
                {"role": "assistant", "content": ex.reasoning},
                {"role": "user", "content": AFTER_COT},
            ]
        else:
            conv += [{"role": "user", "content": q + ANSWER}]
        conv += [{"role": "assistant", "content": ex.answer}]
    q = question_text(prompt, principle, option_a, option_b)
    if cot:
        conv += [{"role": "user", "content": q + COT}]
        if reasoning is not None:
            conv += [{"role": "assistant", "content": reasoning}, {"role": "user", "content": AFTER_COT}]
        return conv
    return conv + [{"role": "user", "content": q + ANSWER}]


class ConstitutionJudge:
    """Compares response pairs under constitution principles, from choice-token log-probs."""

    def __init__(self, backend: Backend, *, cot: bool = False, cot_max_new_tokens: int = 256):
        self.backend, self.cot, self.cot_max_new_tokens = backend, cot, cot_max_new_tokens

    def _contexts(self, items: list[Comparison], reasonings: list[str] | None = None) -> list[Conversation]:
        out = []
        for n, c in enumerate(items):
            for k, (oa, ob) in enumerate(((c.first, c.second), (c.second, c.first))):
                rs = reasonings[2 * n + k] if reasonings else None
                out.append(judge_context(c.prompt, c.principle, oa, ob, list(c.examples), rs, self.cot))
        return out

    def judge(self, items: list[Comparison]) -> list[PairJudgement]:
        reasonings = None
        if self.cot:
            cfg = SamplingConfig(self.cot_max_new_tokens, 0.0)
            reasonings = [g.text for g in self.backend.generate(self._contexts(items), cfg)]
        scores = self.backend.score([ScoreRequest(ctx, CHOICES) for ctx in self._contexts(items, reasonings)])
        out = []
        for n in range(len(items)):
            (a_fwd, b_fwd), (a_rev, b_rev) = scores[2 * n], scores[2 * n + 1]
            p_as_a = choice_probability(a_fwd, b_fwd)
            p_as_b = 1.0 - choice_probability(a_rev, b_rev)
            out.append(
                PairJudgement(
                    combine_orders(p_as_a, p_as_b, cot=self.cot),
                    p_as_a,
                    p_as_b,
                    (reasonings[2 * n], reasonings[2 * n + 1]) if reasonings else None,
                )
            )
        return out


class PreferenceLabeller:
    """Samples response pairs from a policy and labels them with a constitution-reading judge."""

    def __init__(
        self,
        config: PreferenceConfig,
        *,
        constitution: Constitution | None = None,
        policy: Backend | None = None,
        judge: Backend | None = None,
    ):
        config.validate()
        self.config = config
        self.constitution = constitution or load_constitution(config.constitution)
        self.prompts = load_prompts(config.prompts, config.column, config.limit)
        self.chains = self._read_chains(config.revisions) if config.revisions else []
        source = FeedbackSource.parse(config.judge, config.policy, config.guard, flag="--judge")
        self.guard_dir, self.ensemble_dir = source.guard_dir, source.ensemble_dir
        for spec in (config.policy, None if self.guard_dir else config.judge):
            if spec is not None:
                ModelSpec.parse(spec)
        # Which feedback labels the pairs: recorded in run.json and in every judgement.
        self.feedback = source.record | (
            {"revision_pairs": {"chains": config.revisions, "label": config.revision_p, "critic": self._chain_critic()}}
            if config.revisions
            else {}
        )
        self.out = Path(config.out)
        self.rundir = RunDirectory(self.out, JUDGEMENTS, self.run_manifest())
        self._policy, self._judge = policy, judge
        self._given = {id(x) for x in (policy, judge) if x is not None}
        self._guard_judge = None

    def _read_chains(self, path: str) -> list[dict]:
        """SL-CAI chains of this constitution; chains that ended in an error are skipped."""
        digest = constitution_digest(self.constitution)
        chains = []
        for line, chain in iter_jsonl(path):
            missing = [k for k in CHAIN_FIELDS if k not in chain]
            if missing:
                raise InputError(f"not an SL-CAI chain (missing {', '.join(missing)})", source=path, line=line)
            if "error" in chain:
                continue
            theirs = (chain.get("constitution") or {}).get("digest")
            if theirs != digest:
                raise InputError(
                    f"chain {chain['id']!r} was written under another constitution "
                    f"(digest {theirs}, expected {digest})",
                    source=path,
                    line=line,
                )
            chains.append(chain)
        return chains

    def _revision_records(self) -> list[dict]:
        """One pair per chain whose answer a revision changed (revision > initial), and one per
        unrevised helpfulness chain (answer > principled refusal, under the helpfulness principle)."""
        c, con = self.config, self.constitution
        helpful = con.helpfulness_principle
        reasons = [p for p in con.principles if p.kind != "style"] or list(con.principles)
        digest = constitution_digest(con)
        out = []
        for chain in self.chains:
            initial, final = chain["initial_response"], chain["final_response"]
            if chain["rounds"] and final.strip() and final != initial:
                chosen, rejected, principle = final, initial, chain["rounds"][-1].get("principle") or helpful.id
            elif not chain["rounds"] and chain.get("kind") == "helpful" and final.strip():
                reason = random.Random(stable_seed(c.seed, "revision", chain["id"])).choice(reasons)
                chosen, rejected, principle = final, con.principled_refusal(reason), helpful.id
            else:
                continue
            out.append(
                {
                    "prompt": [{"role": "user", "content": chain["prompt"]}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                    "p_chosen": c.revision_p,
                    "id": f"rev:{chain['id']}",
                    "principle": principle,
                    "judge": REVISION_JUDGE,
                    "origin": "revision",
                    "constitution_digest": digest,
                }
            )
        return out

    def run_manifest(self) -> dict:
        c = self.config
        args = {
            k: getattr(c, k)
            for k in (
                "column",
                "policy",
                "judge",
                "guard",
                "samples",
                "cot",
                "margin",
                "limit",
                "seed",
                "few_shot",
                "batch_size",
                "max_new_tokens",
                "cot_max_new_tokens",
                "temperature",
                "top_p",
            )
        }
        if c.revisions:
            args |= {"revisions": c.revisions, "revision_p": c.revision_p, "revisions_sha256": file_sha256(c.revisions)}
        return {
            "task": "rlaif/preferences",
            "charter_version": __version__,
            "feedback": self.feedback,
            "arguments": args
            | {"constitution_digest": constitution_digest(self.constitution), "prompts_sha256": file_sha256(c.prompts)},
        }

    def _chain_critic(self) -> str | None:
        # Which feedback wrote the revisions these pairs come from (the chains record it).
        specs = {(ch.get("critic") or {}).get("spec") for ch in self.chains} - {None}
        return ", ".join(sorted(specs)) or None

    def run(self, progress: Callable[[int, int, str], None] | None = None) -> dict:
        c = self.config
        resuming = self.rundir.check()
        done_ids = self.rundir.done_ids(resuming)
        todo = [p for p in self.prompts if p.id not in done_ids]
        total, done = len(self.prompts), len(self.prompts) - len(todo)
        if todo:
            self._policy = self._policy or load_backend(c.policy)
            guard_path = self.guard_dir or self.ensemble_dir
            if guard_path is not None:
                # The classifier reads the constitution's categories: the judge (guard:DIR) or pooled with
                # one (--guard).
                from charter.guard.feedback import GuardPreferenceJudge
                from charter.guard.model import Guard

                self._guard_judge = GuardPreferenceJudge(Guard.load(guard_path))
            if self.guard_dir is None:
                self._judge = self._judge or (
                    load_backend(c.judge) if c.judge and c.judge != c.policy else self._policy
                )
        if not resuming:
            self.rundir.write_manifest()
        prefs_path = self.out / PREFS
        write_jsonl_atomic(prefs_path, (r for j in read_jsonl(self.rundir.records) for r in self._prefs(j)))
        if progress:
            progress(done, total, "starting")
        for start in range(0, len(todo), c.batch_size):
            batch = todo[start : start + c.batch_size]
            if progress:
                progress(done, total, "sampling")
            records = self._label(batch, lambda s: progress and progress(done, total, s))  # noqa: B023 (called here, not later)
            append_jsonl(self.rundir.records, records)
            append_jsonl(prefs_path, [r for j in records for r in self._prefs(j)])
            done += len(batch)
            if progress:
                progress(done, total, "written")
        # Revision pairs follow the sampled ones: prefs.jsonl was rebuilt from the judgements above,
        # so on a resumed run they are written once again, never twice.
        revision = self._revision_records()
        append_jsonl(prefs_path, revision)
        judged = list(read_jsonl(self.rundir.records))
        pairs = sum(len(j["pairs"]) for j in judged)
        kept = sum(1 for j in judged for p in j["pairs"] if not p["dropped"])
        return {
            "prompts": total,
            "generated": len(todo),
            "pairs": pairs,
            "kept": kept,
            "dropped_near_ties": pairs - kept,
            "revision_pairs": len(revision),
            "out": str(self.out),
        }

    def _label(self, batch, stage) -> list[dict]:
        c = self.config
        sampling = SamplingConfig(c.max_new_tokens, c.temperature, c.top_p, c.seed)
        convs, seeds = [], []
        for p in batch:
            for k in range(c.samples):
                convs.append([{"role": "user", "content": p.text}])
                seeds.append(stable_seed(c.seed, "sample", k, p.id))
        gens = self._policy.generate(convs, sampling, seeds)  # type: ignore[union-attr]
        responses = [[g.text for g in gens[i * c.samples : (i + 1) * c.samples]] for i in range(len(batch))]

        jobs = []  # (prompt index, pair (i, j), principle, examples)
        for b, p in enumerate(batch):
            rng = random.Random(stable_seed(c.seed, "judge", p.id))
            for i, j in itertools.combinations(range(c.samples), 2):
                principle = rng.choice(self.constitution.principles)
                pool = list(principle.preference_examples)
                examples = rng.sample(pool, min(c.few_shot, len(pool)))
                jobs.append((b, (i, j), principle, examples))

        stage("judging")
        if self.ensemble_dir is not None:
            from charter.guard.feedback import EnsembleJudge

            judge = EnsembleJudge(
                ConstitutionJudge(self._judge, cot=c.cot, cot_max_new_tokens=c.cot_max_new_tokens),  # type: ignore[arg-type]
                self._guard_judge,
            )
            judge_info = self.feedback | {"lm": self._judge.info.to_dict()}  # type: ignore[union-attr]
        else:
            judge = self._guard_judge or ConstitutionJudge(
                self._judge, cot=c.cot, cot_max_new_tokens=c.cot_max_new_tokens
            )  # type: ignore[arg-type]
            judge_info = self.feedback if self._guard_judge else self._judge.info.to_dict()  # type: ignore[union-attr]
        verdicts = judge.judge(
            [Comparison(batch[b].text, responses[b][i], responses[b][j], pr, tuple(ex)) for b, (i, j), pr, ex in jobs]
        )

        records = []
        for b, p in enumerate(batch):
            records.append(
                {
                    "id": p.id,
                    "prompt": p.text,
                    "source": p.source,
                    "row": p.row,
                    "responses": responses[b],
                    "pairs": [],
                    "policy": self._policy.info.to_dict(),  # type: ignore[union-attr]
                    "judge": judge_info,
                    "constitution": {
                        "name": self.constitution.name,
                        "version": self.constitution.version,
                        "digest": constitution_digest(self.constitution),
                    },
                    "seed": c.seed,
                    "cot": c.cot,
                    "finished": now(),
                }
            )
        for (b, (i, j), pr, _), v in zip(jobs, verdicts):
            pair = {
                "pair": [i, j],
                "principle": pr.id,
                "p_first": v.p_first,
                "p_first_as_a": v.p_first_as_a,
                "p_first_as_b": v.p_first_as_b,
                "dropped": abs(v.p_first - 0.5) < c.margin,
            }
            if v.reasoning:
                pair["reasoning"] = list(v.reasoning)
            records[b]["pairs"].append(pair)
        return records

    @staticmethod
    def _prefs(judgement: dict) -> list[dict]:
        out = []
        for pair in judgement["pairs"]:
            if pair["dropped"]:
                continue
            i, j = pair["pair"]
            first_wins = pair["p_first"] >= 0.5
            chosen, rejected = (i, j) if first_wins else (j, i)
            out.append(
                {
                    "prompt": [{"role": "user", "content": judgement["prompt"]}],
                    "chosen": [{"role": "assistant", "content": judgement["responses"][chosen]}],
                    "rejected": [{"role": "assistant", "content": judgement["responses"][rejected]}],
                    "p_chosen": pair["p_first"] if first_wins else 1.0 - pair["p_first"],
                    "id": f"{judgement['id']}#{i}-{j}",
                    "principle": pair["principle"],
                    "judge": judgement["judge"]["spec"],
                    "constitution_digest": judgement["constitution"]["digest"],
                }
            )
        return out

    def close(self) -> None:
        # Only what this object loaded: a backend handed in belongs to the caller.
        for backend in {
            id(x): x for x in (self._policy, self._judge) if x is not None and id(x) not in self._given
        }.values():
            backend.close()

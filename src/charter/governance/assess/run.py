"""The assessment run: corpus sampling and judging, generation, the checks with their intervals, the result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from charter import __version__
from charter.backends import Backend, SamplingConfig, load_backend
from charter.core.clock import now
from charter.core.digests import file_sha256
from charter.core.errors import ContextLengthError, InputError
from charter.core.io import append_jsonl, read_jsonl, write_jsonl_atomic, write_text_atomic
from charter.core.refusal import FULL_COMPLIANCE, FULL_REFUSAL, RefusalDetector
from charter.core.rundir import RunDirectory
from charter.core.seeding import stable_seed
from charter.governance.assess.banks import Bank, _load_bank
from charter.governance.assess.config import (
    ANSWERS,
    ASSESSMENT,
    CAVEAT,
    CHART,
    REPORT,
    SPEC,
    STANDARD,
    AssessmentConfig,
)
from charter.governance.assess.corpus import model_identity, sealed_corpus
from charter.governance.assess.judge import GuardJudge
from charter.governance.assess.report import plot_assessment, render_report
from charter.governance.assess.result import (
    AssessmentResult,
    CheckResult,
    Conclusion,
    all_checks,
    decide_check,
    resolve_figures,
    share_of,
)
from charter.governance.assess.sample import CorpusSample

# -- the assessment --------------------------------------------------------------------------------


class SafetyAssessment:
    def __init__(self, config: AssessmentConfig, *, backend: Backend | None = None, guard=None):
        config.validate()
        self.config = c = config
        from charter.policy.profiles import compose

        self._digests: dict[str, str] = {}  # path -> sha256, so no input is hashed twice
        self.profile = compose(list(c.profiles))
        self.figures = resolve_figures(self.profile, c)
        self.out = Path(c.out)
        if self.out.exists() and not self.out.is_dir():
            raise InputError("output path exists and is not a directory", source=str(self.out))
        # The exact weights assessed, computed once: recorded in assessment.json and run.json.
        self.identity = model_identity(c.model)
        # Inputs, in the order of the checks; everything is read before anything is written.
        self.corpus_files = list(c.corpus)
        self.corpus_from_seal: str | None = None
        if not self.corpus_files:
            sealed = sealed_corpus(c.model)
            if sealed:
                self.corpus_files, self.corpus_from_seal, self._digests = sealed
        for f in self.corpus_files:
            if not Path(f).is_file():
                raise InputError("no such corpus file", source=f)
        self.banks = self._load_banks()
        self.assessed = (["corpus"] if self.corpus_files else []) + list(self.banks)
        self._require_figures()
        self.guard = self._load_guard(guard)
        self.judge = GuardJudge(self.guard) if self.guard is not None else None
        # The sampled records are parsed now, so a malformed one fails before anything is written.
        self.corpus = (
            CorpusSample(self.corpus_files, self.figures["corpus_samples"].value, seed=c.seed, column=c.corpus_column)
            if self.corpus_files
            else None
        )
        self._backend = backend
        self._given = backend is not None
        self.detector = RefusalDetector()

    def _load_banks(self) -> dict[str, Bank]:
        c = self.config
        banks: dict[str, Bank] = {}
        for check, path, column, where, default, flag in (
            ("generated", c.questions, c.questions_column, c.questions_where, None, "--questions-where"),
            ("refusal", c.refuse_bank, c.refuse_column, c.refuse_where, "unsafe", "--refuse-where"),
            ("non_refusal", c.answer_bank, c.answer_column, c.answer_where, "safe", "--answer-where"),
        ):
            if path:
                banks[check] = _load_bank(check, path, column, where, default, flag)
        return banks

    def _require_figures(self) -> None:
        """Every check with input needs its sample size and threshold, from a profile or a flag."""
        for check in self.assessed:
            for key in (SPEC[check]["samples"], SPEC[check]["threshold"]):
                if self.figures[key].value is None:
                    flag = "--" + key.replace("_", "-")
                    raise InputError(
                        f"profile {' + '.join(self.profile.names)} sets no assessment.{key}: use --profile "
                        f"cac-genai (TC260-003 figures as commonly cited) or pass {flag}",
                        source="--profile",
                    )

    def _load_guard(self, guard):
        """The given guard, else ``--guard`` when a check judges with one; both heads required."""
        c = self.config
        needs_guard = bool(self.corpus_files) or "generated" in self.banks or (c.as_served and self.banks)
        if needs_guard and guard is None:
            if not c.guard:
                why = "the corpus and generated-content checks judge" if not c.as_served else "--as-served judges"
                raise InputError(f"{why} with a guard: pass --guard DIR (charter guard train)", source="--guard")
            from charter.guard.model import Guard

            guard = Guard.load(c.guard)
        if guard is not None:
            for side in ("input", "output"):
                if side not in guard.heads:
                    raise InputError(
                        f"this guard has no {side} classifier; the assessment needs both", source=c.guard or "guard"
                    )
        return guard

    # -- generation --------------------------------------------------------------------------------
    def _weights(self) -> str | None:
        w = self.identity["weights_digest"]
        return w["sha256"] if w else None

    def _manifest(self) -> dict:
        c = self.config
        return {
            "task": "assess/answers",
            "charter_version": __version__,
            "arguments": {
                "model": c.model,
                "weights_digest": self._weights(),
                "seed": c.seed,
                "max_new_tokens": c.max_new_tokens,
                "temperature": c.temperature,
            },
        }

    def _check_same_weights(self, rundir: RunDirectory) -> None:
        """Answers generated by other weights at the same path (a retrained model) are stale:
        refuse them with a message that says so, before the generic argument check."""
        run = rundir.path / "run.json"
        if not run.is_file():
            return
        try:
            old = json.loads(run.read_text())["arguments"]
        except (ValueError, KeyError, TypeError):
            return  # RunDirectory.check reports an unreadable run.json
        if not isinstance(old, dict) or old.get("model") != self.config.model:
            return
        new = self._weights()
        if old.get("weights_digest") != new:
            was = old.get("weights_digest")
            raise InputError(
                f"the answers here were generated by other weights at {self.config.model} "
                + (
                    f"(weights {str(was)[:23]}…, now {str(new)[:23]}…)"
                    if was and new
                    else "(this run.json records no weights digest)"
                    if not was
                    else "(the weights are no longer there)"
                )
                + ": the model was changed or retrained, so they cannot be reused; use a new --out",
                source=str(rundir.path),
            )

    def _generate(self, items: list[dict], rundir: RunDirectory, report: Callable[[int], None]) -> None:
        c = self.config
        backend = self._backend  # loaded by run() before anything is written
        sampling = SamplingConfig(c.max_new_tokens, c.temperature, 0.95, c.seed)
        done = 0
        for start in range(0, len(items), c.batch_size):
            batch = items[start : start + c.batch_size]
            convs = [[{"role": "user", "content": it["prompt"]}] for it in batch]
            seeds = [stable_seed(c.seed, "assess", it["id"]) for it in batch]
            try:
                results = [(g, None) for g in backend.generate(convs, sampling, seeds)]
            except ContextLengthError:
                results = []  # find the prompts that do not fit; the others still run
                for conv, seed in zip(convs, seeds):
                    try:
                        results.append((backend.generate([conv], sampling, [seed])[0], None))
                    except ContextLengthError as exc:
                        results.append((None, str(exc)))
            info = backend.info.to_dict()
            append_jsonl(
                rundir.records,
                [
                    it
                    | (
                        {"response": g.text, "finish_reason": g.finish_reason, "completion_tokens": g.completion_tokens}
                        if g is not None
                        else {"response": None, "error": err}
                    )
                    | {"model": info, "created": now()}
                    for it, (g, err) in zip(batch, results)
                ],
            )
            done += len(batch)
            report(done)

    # -- run ---------------------------------------------------------------------------------------
    def run(self, progress: Callable[[int, int, str], None] | None = None) -> AssessmentResult:
        report = progress or (lambda done, total, stage: None)
        n_corpus = len(self.corpus.items) if self.corpus else 0
        items = self._bank_items()
        rundir = RunDirectory(self.out, ANSWERS, self._manifest())
        todo = self._answers_to_generate(rundir, items)
        total = n_corpus + len(items)
        done = len(items) - len(todo)
        report(done, total, "starting")
        results: dict[str, CheckResult] = {}
        if self.corpus is not None:
            results["corpus"] = self._assess_corpus(lambda n: report(done + n, total, "corpus"))
            done += n_corpus
        if todo:
            base = done
            self._generate(todo, rundir, lambda n: report(base + n, total, "generating answers"))
        answers = {r["id"]: r for r in read_jsonl(rundir.records)} if items else {}
        for check in self.banks:
            mine = [answers[it["id"]] for it in items if it["bank"] == check]
            results[check] = self._judge_answers(check, mine)
        report(total, total, "writing report")
        result = self._result(results, answers)
        write_text_atomic(self.out / ASSESSMENT, json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
        result.chart = str(plot_assessment(result, self.out / CHART))
        write_text_atomic(self.out / REPORT, render_report(result))
        report(total, total, "done")
        return result

    def _bank_items(self) -> list[dict]:
        """The sampled prompts of every bank, as the records ``answers.jsonl`` is keyed by."""
        items = []
        for check, bank in self.banks.items():
            for p in bank.sample(self.figures[SPEC[check]["samples"]].value, self.config.seed):
                items.append(
                    {
                        "id": f"{check}/{p.id}",
                        "bank": check,
                        "prompt_id": p.id,
                        "prompt": p.text,
                        "source": p.source,
                        "row": p.row,
                        "category": p.fields.get(bank.category_column) if bank.category_column else None,
                    }
                )
        return items

    def _answers_to_generate(self, rundir: RunDirectory, items: list[dict]) -> list[dict]:
        """The items without an answer yet. Checks that the run directory may be resumed and loads
        the model when there is anything to generate, before anything is written."""
        if items:
            self._check_same_weights(rundir)
        resuming = rundir.check() if items else False
        done_ids = rundir.done_ids(resuming)
        todo = [it for it in items if it["id"] not in done_ids]
        if todo and self._backend is None:
            self._backend = load_backend(self.config.model)
        self.out.mkdir(parents=True, exist_ok=True)
        if items and not resuming:
            rundir.write_manifest()
        return todo

    def _assess_corpus(self, report: Callable[[int], None]) -> CheckResult:
        rows = self.judge.judge_corpus(self.corpus.items, report)
        # Records with no text were drawn but not judged: listed for audit, outside n and k.
        empty = [
            {
                "id": it.id,
                "source": it.source,
                "line": it.line,
                "score": None,
                "qualified": None,
                "empty": True,
                "borderline": False,
                "segments": [],
            }
            for it in self.corpus.empty
        ]
        write_jsonl_atomic(self.out / "samples_corpus.jsonl", rows + empty)
        return self._check(
            "corpus",
            [r["qualified"] for r in rows],
            population=len(self.corpus.index),
            inputs=self.corpus_files,
            extra={"empty_records": len(empty), "borderline": sum(r["borderline"] for r in rows)},
        )

    def _judge_answers(self, check: str, answers: list[dict]) -> CheckResult:
        ok = [a for a in answers if a.get("response") is not None]
        rows, outcomes = self._answer_rows(check, ok)
        rows += [
            {k: a.get(k) for k in ("id", "prompt_id", "source", "row", "category", "prompt", "error")}
            for a in answers
            if a.get("response") is None
        ]
        write_jsonl_atomic(self.out / f"samples_{check}.jsonl", rows)
        bank = self.banks[check]
        by_cat: dict[str, list[bool]] = {}
        for r, o in zip(rows, outcomes):
            if r.get("category"):
                by_cat.setdefault(str(r["category"]), []).append(o)
        extra = {"errors": len(answers) - len(ok), "where": bank.where, "column": bank.column}
        if check == "generated":
            extra["borderline"] = sum(r.get("borderline", False) for r in rows)
        if by_cat:
            extra["by_category"] = {cat: share_of(outcomes) for cat, outcomes in sorted(by_cat.items())}
        if check != "generated":
            extra["refusal_detector"] = "charter.core.refusal.RefusalDetector (string patterns)" + (
                " + guard blocks (as served)" if self.config.as_served else ""
            )
        return self._check(check, outcomes, population=len(bank.prompts), inputs=[bank.path], extra=extra)

    def _answer_rows(self, check: str, ok: list[dict]) -> tuple[list[dict], list[bool]]:
        """One audit row per answer and its outcome: qualified (generated), refused (refusal) or
        over-refused (non_refusal); as served, a guard block counts as a refusal."""
        as_served, judge = self.config.as_served, self.judge
        scored = judge is not None and (check == "generated" or as_served)
        out_scores = judge.scores("output", [a["response"] for a in ok]) if scored else None
        gated = judge is not None and as_served and check != "generated"
        in_scores = judge.scores("input", [a["prompt"] for a in ok]) if gated else None
        rows, outcomes = [], []
        for i, a in enumerate(ok):
            row = {
                k: a.get(k)
                for k in ("id", "prompt_id", "source", "row", "category", "prompt", "response", "finish_reason")
            }
            if check == "generated":
                s, t = out_scores[i], judge.threshold("output")  # type: ignore[index]
                row |= {"score": s, "threshold": t, "qualified": s <= t, "borderline": judge.borderline("output", s)}
                outcomes.append(s <= t)
            else:
                label = self.detector.classify(a["response"])
                row["refusal_label"] = label
                refused = label == FULL_REFUSAL if check == "refusal" else label != FULL_COMPLIANCE
                if as_served:
                    blocked_in = in_scores[i] > judge.threshold("input")  # type: ignore[index]
                    blocked_out = out_scores[i] > judge.threshold("output")  # type: ignore[index]
                    row |= {
                        "guard_input_score": in_scores[i],
                        "guard_output_score": out_scores[i],  # type: ignore[index]
                        "guard_blocked": blocked_in or blocked_out,
                    }
                    refused = refused or blocked_in or blocked_out
                row["refused" if check == "refusal" else "over_refused"] = refused
                outcomes.append(refused)
            rows.append(row)
        return rows, outcomes

    def _check(
        self, check: str, outcomes: list[bool], *, population: int, inputs: list[str], extra: dict
    ) -> CheckResult:
        return decide_check(
            check,
            outcomes,
            self.figures,
            population=population,
            inputs=[{"path": p, "sha256": self._sha256(p)} for p in inputs],
            require_interval=self.config.require_interval,
            details=extra,
        )

    def _result(self, results: dict[str, CheckResult], answers: dict) -> AssessmentResult:
        c = self.config
        checks = all_checks(results, self.figures)
        model_info = next((a["model"] for a in answers.values() if a.get("model")), None)
        if self._backend is not None:
            model_info = self._backend.info.to_dict()
        return AssessmentResult(
            standard=STANDARD,
            charter_version=__version__,
            created=now(),
            model={
                "spec": c.model,
                "info": model_info,
                "weights_digest": self.identity["weights_digest"],
                "seal": self.identity["seal"],
            },
            guard=self._guard_summary(),
            profiles=self.profile.names,
            figures=self.figures,
            figures_reference=self.profile.get("assessment.source"),
            caveat=CAVEAT,
            corpus_from_sealed_model=self.corpus_from_seal,
            arguments={k: (list(v) if isinstance(v, tuple) else v) for k, v in c.__dict__.items()},
            checks=checks,
            conclusion=Conclusion.of(checks),
        )

    def _guard_summary(self) -> dict | None:
        """The guard that judged, as recorded in the result: its file's digest and thresholds."""
        if self.guard is None:
            return None
        c = self.config
        gpath = Path(c.guard) / "guard.json" if c.guard else None
        return {
            "path": c.guard,
            "sha256": file_sha256(gpath) if gpath and gpath.is_file() else None,
            "format": self.guard.spec.get("format"),
            "embedder": self.guard.spec.get("embedder"),
            "constitution": self.guard.spec.get("constitution"),
            "sides": {
                side: {"block_threshold": s["block_threshold"], "validation": s.get("validation")}
                for side, s in self.guard.spec["sides"].items()
            },
        }

    def _sha256(self, path: str) -> str:
        if path not in self._digests:
            self._digests[path] = file_sha256(path)
        return self._digests[path]

    def close(self) -> None:
        if self._backend is not None and not self._given:
            self._backend.close()
            self._backend = None

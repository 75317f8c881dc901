"""``charter align``: every stage runs from one recipe, a kill at any stage boundary resumes without
redoing finished stages, a changed setting redoes its stage and the ones after it, and the seal
records which feedback made each stage's data."""

import json

import pytest

from charter.align import AlignConfig, AlignRun, load_recipe
from charter.align.recipe import STAGES
from charter.provenance.seal import unverified_statement
from tests.guard.conftest import _lines


class Killed(Exception):
    pass


def _write_recipe(tmp_path, model_dir, guard_dir, sft_epochs=1, revision_pairs=False):
    harmful = _lines("harmful_requests.jsonl", 400)[::100][:2]
    (tmp_path / "red.txt").write_text("\n".join(harmful) + "\n")
    (tmp_path / "benign.txt").write_text("How do I bake bread?\nWrite a haiku about the sea.\n")
    (tmp_path / "prefs.txt").write_text(f"{harmful[0]}\nName three colours of the rainbow.\n")
    f = tmp_path / "recipe.toml"
    f.write_text(f'''name = "tiny"
model = "hf:{model_dir}"
[guard]
path = "{guard_dir}"
[sl-cai]
prompts = "red.txt"
helpful = "benign.txt"
candidates = 2
batch_size = 4
max_new_tokens = 8
[sft]
epochs = {sft_epochs}
batch_size = 2
max_length = 64
[preferences]
prompts = "prefs.txt"
max_new_tokens = 8
revision_pairs = {str(revision_pairs).lower()}
[dpo]
epochs = 1
batch_size = 2
max_length = 64
[eval]
models = ["base", "dpo"]
suites = ["over-refusal"]
limit = 2
max_new_tokens = 8
[seal]
''')
    return f


def _counting(monkeypatch, calls, kill=None):
    for stage in STAGES:
        name = "_" + stage.replace("-", "_")
        original = getattr(AlignRun, name)

        def wrapped(self, progress, _stage=stage, _original=original):
            if _stage == kill:
                raise Killed(_stage)
            calls.append(_stage)
            return _original(self, progress)

        monkeypatch.setattr(AlignRun, name, wrapped)


def test_align_runs_every_stage_and_resumes_after_a_kill_at_every_boundary(
    tmp_path, tiny_model_dir, finetuned_guard, monkeypatch
):
    monkeypatch.setenv("CHARTER_KEY_PASSPHRASE", "test-passphrase")
    recipe_file = _write_recipe(tmp_path, tiny_model_dir, finetuned_guard[0], revision_pairs=True)
    out = tmp_path / "out"
    cfg = AlignConfig(recipe=str(recipe_file), out=str(out))
    calls: list[str] = []
    for kill in STAGES:
        with monkeypatch.context() as m:
            _counting(m, calls, kill=kill)
            with pytest.raises(Killed):
                AlignRun(cfg).run()
        ledger = json.loads((out / "align.json").read_text())["stages"]
        done = [s for s, e in ledger.items() if e["status"] == "done"]
        assert done == list(STAGES[: STAGES.index(kill)])
        assert ledger[kill]["status"] == "running"
    with monkeypatch.context() as m:
        _counting(m, calls)
        summary = AlignRun(cfg).run()
    # Each stage ran to completion exactly once over eight starts.
    assert calls == list(STAGES)
    assert summary["skipped"] == list(STAGES[:-1]) and summary["ran"] == ["seal"]
    # A finished run is all skips.
    assert AlignRun(cfg).run()["ran"] == []

    chains = [json.loads(x) for x in (out / "sl-cai" / "chains.jsonl").read_text().splitlines()]
    assert len(chains) == 4 and all(c["critic"]["kind"] == "guard" for c in chains)
    assert (out / "sft" / "COMPLETE").exists() and (out / "dpo" / "COMPLETE").exists()
    assert (out / "eval" / "report" / "report.md").is_file()
    # The seals record the feedback that made each stage's data: the guard, with its digest.
    for model, data_name in (("sft", "sft.jsonl"), ("dpo", "prefs.jsonl")):
        statement, _ = unverified_statement(out / model)
        datasets = statement["predicate"]["datasets"]
        entry = next(d for d in datasets if d["name"] == data_name)
        assert entry["lineage"]["feedback"]["kind"] == "guard"
        assert entry["lineage"]["feedback"]["guard_json_sha256"].startswith("sha256:")
    # revision_pairs: the SL-CAI chains are DPO pairs too, and the seal says so.
    prefs = [json.loads(x) for x in (out / "prefs" / "prefs.jsonl").read_text().splitlines()]
    assert any(p["id"].startswith("rev:") and p["judge"] == "sl-cai-revision" for p in prefs)
    assert entry["lineage"]["feedback"]["revision_pairs"]["critic"].startswith("guard:")


def test_a_changed_setting_redoes_its_stage_and_the_ones_after(tmp_path, tiny_model_dir, finetuned_guard, monkeypatch):
    recipe_file = _write_recipe(tmp_path, tiny_model_dir, finetuned_guard[0])
    recipe, base = load_recipe(str(recipe_file))
    recipe = recipe.model_copy(update={"preferences": None, "dpo": None, "eval": None, "seal": None})
    out = tmp_path / "out"
    AlignRun(AlignConfig(recipe=str(recipe_file), out=str(out)), recipe=recipe, base=base).run()
    changed = recipe.model_copy(update={"sft": recipe.sft.model_copy(update={"max_length": 48})})
    calls: list[str] = []
    _counting(monkeypatch, calls)
    summary = AlignRun(AlignConfig(recipe=str(recipe_file), out=str(out)), recipe=changed, base=base).run()
    assert calls == ["sft"] and summary["skipped"] == ["guard", "sl-cai"]
    assert json.loads((out / "sft" / "train_config.json").read_text())["arguments"]["max_length"] == 48
    # --restart-from redoes a stage even when nothing changed.
    calls.clear()
    AlignRun(AlignConfig(recipe=str(recipe_file), out=str(out), restart_from="sl-cai"), recipe=changed, base=base).run()
    assert calls == ["sl-cai", "sft"]

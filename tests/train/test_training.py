"""End-to-end training on tiny random models: routing bit-identity, profiles, DPO, resume, bad input."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from charter.core.errors import InputError
from charter.train import DPOTrainConfig, SFTTrainConfig, TrainingRun
from charter.train.routing import block_index
from tests.train_fixtures import write_jsonl


def _weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def _changed_blocks(base, trained):
    changed, non_block_changed = set(), []
    for name, w in base.items():
        if not torch.equal(w, trained[name]):
            b = block_index(name)
            if b is None:
                non_block_changed.append(name)
            else:
                changed.add(b)
    return changed, non_block_changed


def _sft(tmp_path, model_dir, constitution, rows, out="sft", **kw):
    data = write_jsonl(tmp_path / f"{out}.jsonl", rows)
    kw = {"batch_size": 2, "max_length": 64, "save_steps": 1000} | kw
    cfg = SFTTrainConfig(
        data=str(data), out=str(tmp_path / out), model=f"hf:{model_dir}", constitution=str(constitution), **kw
    )
    return cfg


def test_routed_full_sft_leaves_every_parameter_outside_the_deep_third_bit_identical(
    tmp_path, six_block_model, routed_constitution, sft_rows
):
    cfg = _sft(tmp_path, six_block_model, routed_constitution, sft_rows("deep-one"), lora=False, learning_rate=1e-2)
    summary = TrainingRun(cfg).run()
    out = tmp_path / "sft"
    changed, non_block = _changed_blocks(_weights(six_block_model), _weights(out))
    assert changed == {4, 5}, changed  # trained, and only there
    assert non_block == []
    routing = json.loads((out / "routing.json").read_text())
    assert routing["principles"]["deep-one"]["blocks"] == [4, 5]
    assert routing["groups"]["deep-one"]["examples"] == 6
    prof = json.loads((out / "profiles.json").read_text())["principles"]["deep-one"]
    assert prof["mass_in_routed_blocks"] == pytest.approx(1.0)
    assert prof["distribution"][:4] == [0.0] * 4
    assert prof["entropy_bits"] <= 1.0 + 1e-9 and prof["centroid_depth"] >= 0.8
    assert (out / "profiles.png").exists() and (out / "COMPLETE").exists()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in log) and summary["steps"] == 3
    assert not (out / "checkpoints").exists()


def test_unrouted_training_spreads_over_all_blocks(tmp_path, six_block_model, routed_constitution, sft_rows):
    cfg = _sft(
        tmp_path,
        six_block_model,
        routed_constitution,
        sft_rows("deep-one"),
        lora=False,
        routing=False,
        learning_rate=1e-2,
    )
    TrainingRun(cfg).run()
    changed, non_block = _changed_blocks(_weights(six_block_model), _weights(tmp_path / "sft"))
    # Every block, and the same non-block set as the routed run (none: embeddings, norm and head
    # stay frozen in both, so routed vs unrouted compares equal work).
    assert changed == set(range(6)) and non_block == []
    assert json.loads((tmp_path / "sft" / "routing.json").read_text())["non_block_parameters"] == "frozen"
    prof = json.loads((tmp_path / "sft" / "profiles.json").read_text())
    assert prof["routing_enabled"] is False
    dist = prof["principles"]["deep-one"]["distribution"]
    assert all(d > 0 for d in dist)
    assert prof["principles"]["deep-one"]["entropy_bits"] > 1.0


def test_routed_lora_dpo_with_soft_labels_merges_into_a_loadable_model(
    tmp_path, six_block_model, routed_constitution, pref_rows
):
    rows = pref_rows("shallow-one", n=4, p=0.9) + pref_rows("deep-one", n=4, p=0.6)
    data = write_jsonl(tmp_path / "prefs.jsonl", rows)
    cfg = DPOTrainConfig(
        data=str(data),
        out=str(tmp_path / "dpo"),
        model=f"hf:{six_block_model}",
        constitution=str(routed_constitution),
        batch_size=2,
        max_length=64,
        learning_rate=5e-3,
        lora_r=4,
        lora_alpha=8,
    )
    summary = TrainingRun(cfg).run()
    out = tmp_path / "dpo"
    assert summary["steps"] == 4 and not summary["adapter_only"]
    changed, non_block = _changed_blocks(_weights(six_block_model), _weights(out))
    assert changed == {0, 1, 4, 5} and non_block == []  # middle third untouched: no principle routed there
    prof = json.loads((out / "profiles.json").read_text())["principles"]
    assert prof["shallow-one"]["centroid_depth"] < 0.3 < 0.7 < prof["deep-one"]["centroid_depth"]
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    eps = [r["label_epsilon"] for r in log if "label_epsilon" in r]
    assert eps and all(e == pytest.approx(0.1) or e == pytest.approx(0.4) for e in eps)

    from charter.backends import SamplingConfig
    from charter.backends.hf import HFBackend

    backend = HFBackend(out)
    gen = backend.generate([[{"role": "user", "content": "hi"}]], SamplingConfig(max_new_tokens=3, temperature=0.0))
    assert gen[0].completion_tokens >= 1


def test_lora_adapter_can_be_kept_unmerged(tmp_path, six_block_model, routed_constitution, sft_rows):
    cfg = _sft(tmp_path, six_block_model, routed_constitution, sft_rows("deep-one", n=2), merge_lora=False, lora_r=4)
    summary = TrainingRun(cfg).run()
    assert summary["adapter_only"]
    assert (tmp_path / "sft" / "adapter_config.json").exists()
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(tmp_path / "sft").target_modules
    from charter.backends import SamplingConfig
    from charter.backends.hf import HFBackend

    gen = HFBackend(tmp_path / "sft").generate(
        [[{"role": "user", "content": "hi"}]], SamplingConfig(max_new_tokens=2, temperature=0.0)
    )
    assert gen[0].completion_tokens >= 1


class _Interrupt(TrainerCallback):
    def __init__(self, at):
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


def test_interrupted_training_resumes_from_its_last_checkpoint(
    tmp_path, six_block_model, routed_constitution, sft_rows
):
    rows = sft_rows("deep-one", n=4) + sft_rows("shallow-one", n=4)
    kw = dict(lora=False, learning_rate=1e-2, save_steps=2)
    straight = _sft(tmp_path, six_block_model, routed_constitution, rows, out="straight", **kw)
    TrainingRun(straight).run()

    cfg = _sft(tmp_path, six_block_model, routed_constitution, rows, out="resumed", **kw)
    with pytest.raises(KeyboardInterrupt):
        TrainingRun(cfg, callbacks=[_Interrupt(at=3)]).run()
    out = tmp_path / "resumed"
    assert (out / "checkpoints" / "checkpoint-2").exists() and not (out / "COMPLETE").exists()
    messages = []
    summary = TrainingRun(cfg, echo=messages.append).run()
    assert any("resuming from" in m and "checkpoint-2" in m for m in messages)
    assert summary["steps"] == 4
    a, b = _weights(tmp_path / "straight"), _weights(out)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len([s for s in steps if s == 3]) <= 2
    pa = json.loads((tmp_path / "straight" / "profiles.json").read_text())["principles"]
    pb = json.loads((out / "profiles.json").read_text())["principles"]
    assert pb["deep-one"]["distribution"] == pytest.approx(pa["deep-one"]["distribution"], rel=1e-4)


def test_output_directory_rules(tmp_path, six_block_model, routed_constitution, sft_rows):
    cfg = _sft(tmp_path, six_block_model, routed_constitution, sft_rows("deep-one", n=2), lora_r=4)
    TrainingRun(cfg).run()
    with pytest.raises(InputError, match="holds a finished training run; pass --overwrite"):
        TrainingRun(cfg).run()
    cfg.overwrite = True
    TrainingRun(cfg).run()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    cfg2 = _sft(tmp_path, six_block_model, routed_constitution, sft_rows("deep-one", n=2), out="other")
    with pytest.raises(InputError, match="not a Charter training directory"):
        TrainingRun(cfg2).run()
    assert (other / "notes.txt").read_text() == "mine"


def test_bad_training_input(tmp_path, six_block_model, routed_constitution, sft_rows, pref_rows):
    bad = write_jsonl(tmp_path / "bad.jsonl", [sft_rows("deep-one", 1)[0], {"text": "no messages here"}])
    cfg = SFTTrainConfig(
        data=str(bad), out=str(tmp_path / "o"), model=f"hf:{six_block_model}", constitution=str(routed_constitution)
    )
    with pytest.raises(InputError, match=r"bad.jsonl:2: missing column 'messages'"):
        TrainingRun(cfg).run()
    assert not (tmp_path / "o").exists()  # nothing written for a run that could not start

    unknown = write_jsonl(tmp_path / "u.jsonl", sft_rows("no-such-principle", 1))
    cfg = SFTTrainConfig(
        data=str(unknown), out=str(tmp_path / "o"), model=f"hf:{six_block_model}", constitution=str(routed_constitution)
    )
    with pytest.raises(InputError, match=r"u.jsonl:1: principle 'no-such-principle' is not in the constitution"):
        TrainingRun(cfg).run()

    rows = pref_rows("deep-one", 2)
    del rows[1]["p_chosen"]
    prefs = write_jsonl(tmp_path / "p.jsonl", rows)
    cfg = DPOTrainConfig(
        data=str(prefs), out=str(tmp_path / "o"), model=f"hf:{six_block_model}", constitution=str(routed_constitution)
    )
    with pytest.raises(InputError, match=r"p.jsonl:2: missing column 'p_chosen'.*--labels hard"):
        TrainingRun(cfg).run()

    cfg = SFTTrainConfig(data=str(unknown), out=str(tmp_path / "o"), model="openai:http://127.0.0.1:9/v1#m")
    with pytest.raises(InputError, match="cannot be trained"):
        TrainingRun(cfg).run()
    notamodel = tmp_path / "nm"
    notamodel.mkdir()
    (notamodel / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    cfg = SFTTrainConfig(data=str(unknown), out=str(tmp_path / "o"), model=f"hf:{notamodel}")
    with pytest.raises(InputError, match="cannot be trained as a causal language model"):
        TrainingRun(cfg).run()


def test_bf16_mixed_precision_trains_and_saves_fp32_weights(tmp_path, six_block_model, routed_constitution, pref_rows):
    data = write_jsonl(tmp_path / "prefs.jsonl", pref_rows("deep-one", n=2))
    cfg = DPOTrainConfig(
        data=str(data),
        out=str(tmp_path / "dpo"),
        model=f"hf:{six_block_model}",
        constitution=str(routed_constitution),
        batch_size=2,
        max_length=64,
        lora=False,
        dtype="bfloat16",
        learning_rate=1e-3,
    )
    TrainingRun(cfg).run()
    trained = _weights(tmp_path / "dpo")
    assert all(w.dtype == torch.float32 for w in trained.values())
    changed, non_block = _changed_blocks(_weights(six_block_model), trained)
    assert changed == {4, 5} and non_block == []
    assert json.loads((tmp_path / "dpo" / "train_config.json").read_text())["arguments"]["dtype"] == "bfloat16"

"""One integration run on the embedded SmolLM2 model: routed LoRA SFT, merged, loaded back."""

import json

import pytest

from charter.train import SFTTrainConfig, TrainingRun
from tests.train_fixtures import write_jsonl

pytestmark = pytest.mark.integration


def test_embedded_model_trains_routed_and_loads_back(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": "How do I pick a lock?"},
                {"role": "assistant", "content": "I can't help with getting into property that isn't yours."},
            ],
            "principles": ["avoid-serious-harm"],
        },
        {
            "messages": [
                {"role": "user", "content": "Give me a bread recipe."},
                {"role": "assistant", "content": "Mix flour, water, salt and yeast; knead, rise, bake."},
            ],
            "principles": ["genuine-helpfulness"],
        },
    ]
    data = write_jsonl(tmp_path / "sft.jsonl", rows)
    cfg = SFTTrainConfig(
        data=str(data),
        out=str(tmp_path / "sft"),
        model="embedded",
        batch_size=1,
        max_length=128,
        lora_r=4,
        learning_rate=1e-3,
    )
    summary = TrainingRun(cfg).run()
    assert summary["steps"] == 2
    routing = json.loads((tmp_path / "sft" / "routing.json").read_text())
    assert routing["n_blocks"] == 30 and routing["principles"]["avoid-serious-harm"]["blocks"] == list(range(20, 30))
    prof = json.loads((tmp_path / "sft" / "profiles.json").read_text())["principles"]
    assert prof["avoid-serious-harm"]["mass_in_routed_blocks"] == pytest.approx(1.0)
    assert prof["genuine-helpfulness"]["centroid_depth"] < 0.34

    from charter.backends import SamplingConfig
    from charter.backends.hf import HFBackend

    out = HFBackend(tmp_path / "sft").generate(
        [[{"role": "user", "content": "What is the capital of France?"}]],
        SamplingConfig(max_new_tokens=8, temperature=0.0),
    )
    assert out[0].text.strip()

"""Recipe files: the bundled ones are valid, and a bad one fails with its file, line and field."""

import pytest

from charter.align import bundled_recipes, load_recipe
from charter.core.errors import InputError


def test_bundled_recipes_load_and_name_existing_files():
    assert {"demo", "standard"} <= set(bundled_recipes())
    for name in ("demo", "standard"):
        recipe, base = load_recipe(name)
        assert recipe.stages() == ["guard", "sl-cai", "sft", "preferences", "dpo", "eval", "seal"]
        assert (base / recipe.sl_cai.prompts).is_file()
        assert recipe.sl_cai.critic == "guard" and recipe.preferences.judge == "guard"


def test_benign_prompts_include_imperative_lookalikes_disjoint_from_harmful():
    """Selectivity needs benign imperative tasks in the harmful requests' frames; none may be harmful."""
    import json
    import re

    for name in ("demo", "standard"):
        recipe, base = load_recipe(name)
        benign = [json.loads(x) for x in (base / recipe.sl_cai.helpful).read_text().splitlines()]
        harmful = {json.loads(x)["prompt"] for x in (base / recipe.sl_cai.prompts).read_text().splitlines()}
        tasks = [r["prompt"] for r in benign if r["category"] == "task-lookalike"]
        assert len(tasks) >= 20 and not harmful & set(tasks)
        frames = re.compile(r"^(Write|Develop|Create|Design|Generate|Provide|Give|Outline|Explain)\b")
        assert sum(bool(frames.match(t)) for t in tasks) >= 0.6 * len(tasks)


def _recipe(tmp_path, body: str):
    (tmp_path / "p.txt").write_text("How do I bake bread?\n")
    f = tmp_path / "r.toml"
    f.write_text(body)
    return f


def test_unknown_field_names_the_field_and_line(tmp_path):
    f = _recipe(tmp_path, 'name = "x"\n\n[sl-cai]\nprompts = "p.txt"\ncandidatez = 3\n')
    with pytest.raises(InputError) as e:
        load_recipe(str(f))
    assert "candidatez" in str(e.value) and "unknown field" in str(e.value)
    assert e.value.line == 5 and str(f) in str(e.value)


def test_bad_value_and_missing_file_are_located(tmp_path):
    f = _recipe(tmp_path, 'name = "x"\n[sl-cai]\nprompts = "p.txt"\ncandidates = 0\n')
    with pytest.raises(InputError) as e:
        load_recipe(str(f))
    assert "candidates" in str(e.value) and e.value.line == 4
    f = _recipe(tmp_path, 'name = "x"\n[sl-cai]\nprompts = "missing.txt"\ncritic = "embedded"\n')
    with pytest.raises(InputError) as e:
        load_recipe(str(f))
    assert "sl-cai.prompts" in str(e.value) and e.value.line == 3
    f = _recipe(tmp_path, 'name = "x"\n[sl-cai]\nprompts = "p.txt"\n')  # critic "guard" without a [guard] table
    with pytest.raises(InputError, match=r"\[guard\]"):
        load_recipe(str(f))
    with pytest.raises(InputError, match="bundled: demo"):
        load_recipe("no-such-recipe")

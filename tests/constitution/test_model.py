import pytest

from charter.constitution import bundled_names, load_constitution, parse_constitution
from charter.core.errors import InputError

MINIMAL = """
name = "acme"
version = "1"

[[principles]]
id = "be-safe"
tier = "broadly_safe"
statement = "Be safe."
critique = "Is it unsafe?"
revision = "Make it safe."
"""


def test_bundled_constitutions_load():
    assert {"cai-2022", "default"} <= set(bundled_names())
    cai = load_constitution("cai-2022")
    assert len(cai.principles) == 16 and len(cai.examples) == 4
    assert cai.examples[0].critique_request and cai.examples[0].revision
    default = load_constitution("default")
    assert [t.id for t in default.tiers] == ["broadly_safe", "broadly_ethical", "guidelines", "genuinely_helpful"]
    assert all(p.rationale for p in default.principles)
    assert default.hard_constraints and all(p.tier == "broadly_safe" for p in default.hard_constraints)
    assert default.categories.prohibited and default.categories.allowed
    assert all(c.examples for c in default.categories.prohibited)


def test_cai_2022_reproduces_the_h4_source(shared_data):
    import json

    src = json.loads((shared_data / "h4-cai" / "constitution_anthropic.json").read_text())
    cai = load_constitution("cai-2022")
    assert [p.critique for p in cai.principles] == [c["critic"].strip() for c in src["constitutions"]]
    assert [p.revision for p in cai.principles] == [c["revision"].strip() for c in src["constitutions"]]
    assert [e.revision for e in cai.examples] == [d[5]["content"].strip() for d in src["system_chat"]]


def test_minimal_file_gets_default_tiers_and_kind():
    c = parse_constitution(MINIMAL)
    assert c.tiers[0].id == "broadly_safe" and len(c.tiers) == 4
    assert c.principles[0].kind == "default_behaviour"
    assert c.principles[0].depth == "middle"


@pytest.mark.parametrize(
    "written, kind",
    [
        ("hard constraint", "hard_constraint"),
        ("Hard-Constraint", "hard_constraint"),
        ("default behavior", "default_behaviour"),
        ("style", "style"),
    ],
)
def test_kind_spellings_are_normalised(written, kind):
    c = parse_constitution(MINIMAL + f'kind = "{written}"\n')
    assert c.principles[0].kind == kind


def test_depth_presets_and_fractions_map_to_layers():
    c = parse_constitution(MINIMAL + "depth = [0.5, 1.0]\n")
    p = c.principles[0]
    assert p.depth_fractions == (0.5, 1.0)
    assert list(p.layer_range(30)) == list(range(15, 30))
    deep = parse_constitution(MINIMAL + 'depth = "deep"\n').principles[0]
    shallow = parse_constitution(MINIMAL + 'depth = "shallow"\n').principles[0]
    assert list(deep.layer_range(30)) == list(range(20, 30))
    assert list(shallow.layer_range(30)) == list(range(0, 10))
    assert len(shallow.layer_range(2)) >= 1


def _error(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        parse_constitution(text, source="c.toml")
    assert "\n" not in str(info.value)
    return info.value


def test_unknown_tier_names_file_line_and_field():
    text = (
        MINIMAL
        + """
[[principles]]
id = "second"
tier = "safe-ish"
statement = "s"
critique = "c"
revision = "r"
"""
    )
    err = _error(text)
    assert err.line == text.splitlines().index('tier = "safe-ish"') + 1
    assert "principles[1].tier" in str(err) and "unknown tier 'safe-ish'" in str(err)
    assert str(err).startswith(f"c.toml:{err.line}:")


def test_missing_field_points_at_the_table_header():
    text = MINIMAL + '\n[[principles]]\nid = "x"\ntier = "guidelines"\nstatement = "s"\nrevision = "r"\n'
    err = _error(text)
    lines = text.splitlines()
    second_header = [i for i, l in enumerate(lines) if l == "[[principles]]"][1] + 1
    assert err.line == second_header
    assert "principles[1].critique: required field is missing" in str(err)


def test_toml_syntax_error_has_a_line():
    err = _error('name = "x"\nversion = \n')
    assert err.line == 2 and "invalid TOML" in str(err)


def test_unknown_field_is_rejected_as_a_typo():
    err = _error(MINIMAL + 'statment = "typo"\n')
    assert "statment" in str(err) and "unknown field" in str(err)
    assert err.line == len(MINIMAL.splitlines()) + 1


def test_duplicate_principle_ids_are_rejected():
    err = _error(MINIMAL + MINIMAL[MINIMAL.index("[[principles]]") :])
    assert "duplicate principle id 'be-safe'" in str(err)


@pytest.mark.parametrize("depth", ["[0.8, 0.2]", "[0.1]", '"bottom"', "[-0.1, 0.5]"])
def test_bad_depth_is_rejected(depth):
    err = _error(MINIMAL + f"depth = {depth}\n")
    assert "depth" in str(err)
    assert err.line == len(MINIMAL.splitlines()) + 1


def test_category_example_error_is_located():
    text = MINIMAL + '\n[[categories.prohibited]]\nid = "Bad Id"\ndescription = "d"\n'
    err = _error(text)
    assert "categories.prohibited[0].id" in str(err)
    assert err.line == text.splitlines().index('id = "Bad Id"') + 1


def test_empty_principles_rejected():
    err = _error('name = "x"\nversion = "1"\nprinciples = []\n')
    assert "principles" in str(err)


def test_missing_file_and_unknown_name():
    with pytest.raises(InputError, match="no such constitution file or bundled name"):
        load_constitution("no-such-constitution")

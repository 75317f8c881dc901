import json

import pytest

from charter.core.errors import InputError
from charter.core.io import append_jsonl, load_prompts, read_jsonl, repair_jsonl


def test_shared_dev_sets_load_directly(shared_data):
    adv = load_prompts(shared_data / "advbench" / "harmful_behaviors.csv")
    assert len(adv) == 520 and adv[0].text.startswith("Write a script")
    xs = load_prompts(shared_data / "xstest" / "xstest_prompts.csv")
    assert len(xs) == 450
    hh = load_prompts(shared_data / "hh-rlhf-dev" / "harmless_base_test_first400.jsonl")
    assert len(hh) == 400
    assert "Human:" not in hh[0].text and "Assistant:" not in hh[0].text
    cv = load_prompts(shared_data / "cvalues" / "cvalues_responsibility_prompts.jsonl", limit=5)
    assert len(cv) == 5 and all(p.text for p in cv)
    strings = load_prompts(shared_data / "advbench" / "harmful_strings.csv", column="target", limit=3)
    assert len(strings) == 3


def test_ids_are_stable_and_unique(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("a\n\nb\na\n")
    first, second = load_prompts(f), load_prompts(f)
    assert [p.id for p in first] == [p.id for p in second]
    assert len({p.id for p in first}) == 3 and [p.text for p in first] == ["a", "b", "a"]


def test_json_list_and_jsonl_strings(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"q": "one"}, {"q": "two"}]))
    assert [p.text for p in load_prompts(tmp_path / "a.json", column="q")] == ["one", "two"]
    (tmp_path / "b.jsonl").write_text('"x"\n"y"\n')
    assert [p.text for p in load_prompts(tmp_path / "b.jsonl")] == ["x", "y"]


@pytest.mark.parametrize(
    "name, content, column, needle, line",
    [
        ("empty.csv", "", None, "prompt file is empty", None),
        ("blank.txt", "\n  \n", None, "prompt file is empty", None),
        ("bad.jsonl", '{"prompt": "a"}\n{"prompt": \n', None, "malformed JSON line", 2),
        ("cols.csv", "a,b\n1,2\n", None, "pass --column", None),
        ("cols2.csv", "prompt,b\n1,2\n", "nope", "unknown column 'nope' (columns: prompt, b)", None),
        ("ragged.csv", "prompt\nx,y\n", None, "more fields than the header", 2),
        ("mixed.jsonl", '{"prompt": "a"}\n[1]\n', None, "must be a JSON object", 2),
        ("nums.jsonl", '{"prompt": 3}\n', None, "is not a string", 1),
        ("x.parquet", "zz", None, "unsupported prompt file type", None),
        ("allempty.csv", 'prompt\n\n""\n', None, "no prompts found", None),
    ],
)
def test_bad_prompt_files(tmp_path, name, content, column, needle, line):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")) as info:
        load_prompts(f, column)
    assert str(f) in str(info.value)
    assert info.value.line == line


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such prompt file"):
        load_prompts(tmp_path / "nope.csv")


def test_repair_drops_a_torn_last_line(tmp_path):
    f = tmp_path / "r.jsonl"
    append_jsonl(f, [{"a": 1}, {"a": 2}])
    with open(f, "a") as fh:
        fh.write('{"a": 3, "b"')
    assert repair_jsonl(f) == 2
    assert [r["a"] for r in read_jsonl(f)] == [1, 2]


def test_multiline_csv_fields_and_unicode_line_separators(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text('prompt\n"line one\nline two"\n"page\x0cbreak"\n', newline="")
    assert [p.text for p in load_prompts(f)] == ["line one\nline two", "page\x0cbreak"]
    g = tmp_path / "u.jsonl"
    g.write_text(json.dumps({"prompt": "a\u2028b"}, ensure_ascii=False) + "\n")
    assert [p.text for p in load_prompts(g)] == ["a\u2028b"]

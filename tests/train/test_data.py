import json

import pytest

from charter.core.errors import InputError
from charter.train.data import load_sft_data


def test_a_record_holding_u2028_is_one_record_as_charter_cai_wrote_it(tmp_path):
    # json.dumps(ensure_ascii=False) leaves U+2028 raw inside a string; splitlines() would break there.
    p = tmp_path / "sft.jsonl"
    rows = [{"prompt": "first\u2028line", "completion": "ok\x85fine"}, {"prompt": "two", "completion": "b"}]
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    data = load_sft_data(p)
    assert len(data.rows) == 2
    assert data.rows[0]["prompt"] == "first\u2028line"


def test_a_malformed_line_is_named_by_its_physical_line(tmp_path):
    p = tmp_path / "sft.jsonl"
    p.write_text(
        json.dumps({"prompt": "a\u2028b", "completion": "c"}, ensure_ascii=False) + "\n\n{oops\n", encoding="utf-8"
    )
    with pytest.raises(InputError) as e:
        load_sft_data(p)
    assert e.value.line == 3

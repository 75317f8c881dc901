import importlib.util

import pytest

from charter.audit import connect
from charter.core.errors import InputError


def test_a_postgresql_url_without_the_postgres_extra_is_one_line_naming_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(InputError) as e:
        connect("postgresql://127.0.0.1:5432/charter")
    assert "charter[postgres]" in str(e.value) and e.value.exit_code == 2 and "\n" not in str(e.value)


def test_not_a_url_is_an_input_error():
    with pytest.raises(InputError, match="not a database URL"):
        connect("audit.db")

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import build_tiny_model  # noqa: E402

SHARED_DATA = Path(os.environ.get("CHARTER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared dev data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # The dequantised-GGUF cache is shared by all tests of a session, never the user's own.
    monkeypatch.setenv(
        "CHARTER_CACHE", os.environ.get("CHARTER_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "cache")
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


from tests.db_fixtures import db_url  # noqa: E402,F401
from tests.train_fixtures import pref_rows, routed_constitution, sft_rows, six_block_model  # noqa: E402,F401

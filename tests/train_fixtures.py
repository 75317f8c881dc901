"""Fixtures and helpers for training tests (tiny six-block model, a two-principle routed constitution, data rows)."""

import json
from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_model

ROUTED_CONSTITUTION = """
name = "routing-test"
version = "1"

[[principles]]
id = "deep-one"
tier = "broadly_safe"
statement = "Refuse to help with harm."
critique = "Is it harmful?"
revision = "Remove the harm."
preference = "Which is less harmful?"
depth = "deep"

[[principles]]
id = "shallow-one"
tier = "genuinely_helpful"
statement = "Be concise."
critique = "Is it verbose?"
revision = "Make it concise."
preference = "Which is more concise?"
depth = "shallow"
"""


@pytest.fixture(scope="session")
def six_block_model(tmp_path_factory) -> Path:
    """Six blocks, so the thirds are blocks 0-1 (shallow), 2-3 (middle), 4-5 (deep)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-6"), layers=6)


@pytest.fixture
def routed_constitution(tmp_path) -> Path:
    p = tmp_path / "routed.toml"
    p.write_text(ROUTED_CONSTITUTION)
    return p


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def sft_rows():
    def make(principle, n=6):
        return [
            {
                "messages": [
                    {"role": "user", "content": f"How do I do thing {i}?"},
                    {"role": "assistant", "content": f"I can't help with that, but here is something else {i}."},
                ],
                "principles": [principle] if principle else [],
            }
            for i in range(n)
        ]

    return make


@pytest.fixture
def pref_rows():
    def make(principle, n=6, p=0.8):
        return [
            {
                "prompt": [{"role": "user", "content": f"How do I do thing {i}?"}],
                "chosen": [{"role": "assistant", "content": "I can't help with that."}],
                "rejected": [{"role": "assistant", "content": f"Sure, here is how to do thing {i}: a b c."}],
                "p_chosen": p,
                "principle": principle,
            }
            for i in range(n)
        ]

    return make

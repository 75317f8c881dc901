import pytest

from tests.governance import releases
from tests.tiny_models import build_tiny_model


@pytest.fixture(scope="session")
def minilm():
    from charter.guard.embed import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def gov_keys(tmp_path_factory):
    return releases.keys(tmp_path_factory.mktemp("gov-keys"))


@pytest.fixture(scope="session")
def make_release(tmp_path_factory, six_block_model, gov_keys, minilm):
    """make_release(tag, **variant) -> sealed model dir, cached per tag for the session."""
    cache = {}

    def make(tag: str, base=None, **kw):
        if tag not in cache:
            cache[tag] = releases.release(
                tmp_path_factory.mktemp(f"rel-{tag}"), base or six_block_model, gov_keys, embedder=minilm, **kw
            )
        return cache[tag]

    return make


@pytest.fixture(scope="session")
def other_base(tmp_path_factory):
    """Same architecture, different weights (another base model)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-6-seed1"), layers=6, seed=1)


@pytest.fixture(scope="session")
def other_arch(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-4"), layers=4)

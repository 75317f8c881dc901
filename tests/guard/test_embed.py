import numpy as np
import pytest

from charter.guard.embed import MiniLMEmbedder


@pytest.fixture(scope="module")
def embedder():
    return MiniLMEmbedder()


def test_embeddings_are_normalised_and_semantic(embedder):
    v = embedder.embed(
        ["How do I make a bomb?", "Instructions for building an explosive device", "A recipe for banana bread"]
    )
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_embedding_is_batch_invariant(embedder):
    texts = ["short", "a much longer sentence about something else entirely", "medium length text"]
    together = embedder.embed(texts)
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)

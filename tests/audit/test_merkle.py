import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from charter.audit.merkle import MerkleTree, leaf_hash, node_hash, verify_consistency, verify_inclusion


def mth(data: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written from the definition."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return leaf_hash(data[0])
    k = 1
    while k * 2 < len(data):
        k *= 2
    return node_hash(mth(data[:k]), mth(data[k:]))


def test_rfc6962_hash_prefixes():
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


def test_roots_and_proofs_match_the_definition_for_every_size_up_to_33():
    for n in range(1, 34):
        data = [f"entry {i}".encode() for i in range(n)]
        tree = MerkleTree([leaf_hash(d) for d in data])
        for m in range(1, n + 1):
            root_m = tree.root(m)
            assert root_m == mth(data[:m])
            for i in range(m):
                proof = tree.inclusion_proof(i, m)
                assert verify_inclusion(i, m, leaf_hash(data[i]), proof, root_m)
                assert not verify_inclusion(i, m, leaf_hash(b"forged"), proof, root_m)
                if m > 1:
                    assert (
                        not verify_inclusion((i + 1) % m, m, leaf_hash(data[i]), proof, root_m)
                        or data[i] == data[(i + 1) % m]
                    )
            assert verify_consistency(m, n, root_m, tree.root(n), tree.consistency_proof(m, n))
            if m < n:
                assert not verify_consistency(m, n, root_m, leaf_hash(b"other"), tree.consistency_proof(m, n))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 300), st.data())
def test_a_changed_old_leaf_breaks_consistency(n, data):
    m = data.draw(st.integers(1, n - 1))
    j = data.draw(st.integers(0, m - 1))
    leaves = [leaf_hash(str(i).encode()) for i in range(n)]
    tree = MerkleTree(leaves)
    forged = list(leaves)
    forged[j] = leaf_hash(b"rewritten")
    ftree = MerkleTree(forged)
    # The rewritten log cannot prove it extends the honest old head.
    assert not verify_consistency(m, n, tree.root(m), ftree.root(n), ftree.consistency_proof(m, n))

import json
import random
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from charter.constitution import constitution_digest, load_constitution, parse_constitution

TEXT = (
    st.text(alphabet=string.ascii_letters + string.digits + " .,;:!?'-()éü中", min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)
IDS = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


@st.composite
def constitutions(draw):
    tiers = ["broadly_safe", "broadly_ethical", "guidelines", "genuinely_helpful"]
    ids = draw(st.lists(IDS, min_size=1, max_size=4, unique=True))
    principles = [
        {
            "id": i,
            "tier": draw(st.sampled_from(tiers)),
            "kind": draw(st.sampled_from(["hard_constraint", "default_behaviour", "style"])),
            "statement": draw(TEXT),
            "rationale": draw(TEXT),
            "critique": draw(TEXT),
            "revision": draw(TEXT),
            "preference": draw(TEXT),
            "depth": draw(st.sampled_from(["deep", "middle", "shallow"])),
        }
        for i in ids
    ]
    return {"name": draw(TEXT), "version": draw(IDS), "refusal": draw(TEXT), "principles": principles}


def _value(v) -> str:
    return json.dumps(v, ensure_ascii=False)


def dump_toml(data: dict, rng: random.Random) -> str:
    """Write a constitution dict as TOML with shuffled keys, random spacing and comments."""

    def pad() -> str:
        return " " * rng.randint(0, 3)

    def kv(k, v) -> str:
        comment = f"  # {rng.choice(['note', 'why', 'todo'])}" if rng.random() < 0.3 else ""
        return f"{pad()}{k}{pad()}={pad()}{_value(v)}{comment}"

    lines = [f"# generated {rng.random()}"]
    scalars = [(k, v) for k, v in data.items() if k != "principles"]
    rng.shuffle(scalars)
    lines += [kv(k, v) for k, v in scalars]
    for p in data["principles"]:
        lines += ["" if rng.random() < 0.5 else "   ", "[[principles]]"]
        items = list(p.items())
        rng.shuffle(items)
        lines += [kv(k, v) for k, v in items]
    return "\n".join(lines) + "\n" * rng.randint(0, 2)


@settings(max_examples=60, deadline=None)
@given(constitutions(), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_digest_is_invariant_under_reformatting(data, seed_a, seed_b):
    a = parse_constitution(dump_toml(data, random.Random(seed_a)))
    b = parse_constitution(dump_toml(data, random.Random(seed_b)))
    assert constitution_digest(a) == constitution_digest(b)


@settings(max_examples=60, deadline=None)
@given(constitutions(), st.data())
def test_digest_changes_with_any_meaningful_edit(data, draw):
    before = constitution_digest(parse_constitution(dump_toml(data, random.Random(0))))
    edited = json.loads(json.dumps(data))
    target = draw.draw(
        st.sampled_from(["name", "refusal", "statement", "critique", "revision", "tier", "kind", "depth", "rationale"])
    )
    if target in ("name", "refusal"):
        edited[target] += "!"
    else:
        p = edited["principles"][draw.draw(st.integers(0, len(edited["principles"]) - 1))]
        if target == "tier":
            p["tier"] = "guidelines" if p["tier"] != "guidelines" else "broadly_safe"
        elif target == "kind":
            p["kind"] = "style" if p["kind"] != "style" else "hard_constraint"
        elif target == "depth":
            p["depth"] = [0.0, 0.5]
        else:
            p[target] += " more"
    after = constitution_digest(parse_constitution(dump_toml(edited, random.Random(1))))
    assert before != after


def test_spelling_out_a_default_does_not_change_the_digest():
    base = load_constitution("default")
    text = (
        'name = "x"\nversion = "1"\n[[principles]]\nid = "a"\ntier = "guidelines"\n'
        'statement = "s"\ncritique = "c"\nrevision = "r"\n'
    )
    explicit = text + 'depth = "middle"\nkind = "default_behaviour"\n'
    assert constitution_digest(parse_constitution(text)) == constitution_digest(parse_constitution(explicit))
    assert constitution_digest(base).startswith("sha256:") and len(constitution_digest(base)) == 71

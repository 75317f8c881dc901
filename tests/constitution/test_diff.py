from charter.constitution import diff_constitutions, load_constitution, parse_constitution

BASE = """
name = "acme"
version = "1"

[[principles]]
id = "no-weapons"
tier = "broadly_safe"
kind = "hard_constraint"
statement = "No weapons uplift."
critique = "c1"
revision = "r1"

[[principles]]
id = "honest"
tier = "broadly_ethical"
statement = "Be honest."
critique = "c2"
revision = "r2"

[[principles]]
id = "tone"
tier = "genuinely_helpful"
kind = "style"
statement = "Be warm."
critique = "c3"
revision = "r3"

[[categories.prohibited]]
id = "weapons"
description = "Weapons."
"""


def test_identical():
    d = diff_constitutions(parse_constitution(BASE), parse_constitution(BASE + "\n# comment\n"))
    assert d.identical and not d.added and not d.changed


def test_added_removed_changed_moved_and_hard_constraints():
    new = (
        BASE.replace('statement = "Be honest."', 'statement = "Be honest and calibrated."')
        .replace('tier = "genuinely_helpful"', 'tier = "guidelines"')
        .replace('kind = "hard_constraint"\n', "")
        .replace('version = "1"', 'version = "2"')
        .replace('description = "Weapons."', 'description = "Weapons of any kind."')
        + '\n[[principles]]\nid = "oversight"\ntier = "broadly_safe"\nkind = "hard constraint"\n'
        'statement = "s"\ncritique = "c"\nrevision = "r"\n'
    )
    d = diff_constitutions(parse_constitution(BASE), parse_constitution(new))
    assert not d.identical
    assert d.metadata_changed == ["version"]
    assert d.added == ["oversight"] and d.removed == []
    changed = {c.principle: c.fields for c in d.changed}
    assert changed["honest"] == ["statement"]
    assert "tier" in changed["tone"] and "kind" in changed["no-weapons"]
    assert [(m.principle, m.old_tier, m.new_tier, m.direction) for m in d.tier_moves] == [
        ("tone", "genuinely_helpful", "guidelines", "up")
    ]
    assert d.hard_constraints_removed == ["no-weapons"]
    assert d.hard_constraints_added == ["oversight"]
    assert d.categories_changed == ["prohibited:weapons"]


def test_removed_hard_constraint_and_downward_move():
    old = load_constitution("default")
    text = BASE.replace('tier = "broadly_ethical"', 'tier = "guidelines"')
    d = diff_constitutions(parse_constitution(BASE), parse_constitution(text))
    assert d.tier_moves[0].direction == "down"
    d2 = diff_constitutions(old, parse_constitution(BASE))
    assert "no-mass-casualty-uplift" in d2.hard_constraints_removed
    assert "no-weapons" in d2.hard_constraints_added

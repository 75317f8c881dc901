"""Drift classification on hand-made constitution pairs, with the real offline MiniLM embedder."""

import json
import subprocess

import pytest
from typer.testing import CliRunner

from charter.cli.main import app
from charter.constitution import parse_constitution
from charter.governance.drift import DriftAuditor, DriftConfig, drift_history

HEADER = 'name = "drift-test"\nversion = "{version}"\n'


def principle(pid, statement, tier="broadly_ethical", kind="default_behaviour", depth="middle"):
    return (
        f'\n[[principles]]\nid = "{pid}"\ntier = "{tier}"\nkind = "{kind}"\ndepth = "{depth}"\n'
        f'statement = "{statement}"\ncritique = "Does the response break this?"\n'
        f'revision = "Rewrite it so it does not."\n'
    )


BASE = {
    "weapons": (
        "Never provide instructions for building weapons capable of mass casualties.",
        "broadly_safe",
        "hard_constraint",
    ),
    "honesty": ("Be truthful and never deceive the user about facts.", "broadly_ethical", "default_behaviour"),
    "privacy": (
        "Do not reveal personal information about private individuals.",
        "broadly_ethical",
        "default_behaviour",
    ),
    "concise": ("Keep answers short and to the point.", "genuinely_helpful", "style"),
}


def build(version="1", **changes):
    """BASE with per-id overrides: None removes, a dict overrides fields (id/statement/tier/kind/depth)."""
    text = HEADER.format(version=version)
    for pid, (statement, tier, kind) in BASE.items():
        c = changes.pop(pid, {})
        if c is None:
            continue
        text += principle(
            c.get("id", pid),
            c.get("statement", statement),
            c.get("tier", tier),
            c.get("kind", kind),
            c.get("depth", "middle"),
        )
    for pid, c in changes.items():  # new principles
        text += principle(pid, c["statement"], c.get("tier", "guidelines"), c.get("kind", "default_behaviour"))
    return parse_constitution(text)


@pytest.fixture(scope="module")
def auditor():
    return DriftAuditor(DriftConfig())


def by_label(report):
    return {p.label: p for p in report.principles}


def test_identical_versions_have_zero_drift(auditor):
    r = auditor.compare(build(), build())
    assert r.identical and r.score == 0.0 and not r.changes
    assert r.document_similarity == pytest.approx(1.0, abs=1e-5)


def test_added_and_removed(auditor):
    r = auditor.compare(
        build(), build("2", privacy=None, cite={"statement": "Cite sources for factual claims when possible."})
    )
    p = by_label(r)
    assert p["privacy"].kinds == ["removed"] and p["cite"].kinds == ["added"]
    assert r.counts["added"] == 1 and r.counts["removed"] == 1
    assert 0.0 < r.score < 1.0


def test_rename_is_matched_by_meaning_not_counted_as_add_and_remove(auditor):
    r = auditor.compare(
        build(),
        build("2", privacy={"id": "no-doxxing", "statement": "Never disclose personal details about private people."}),
    )
    p = by_label(r)["privacy -> no-doxxing"]
    assert p.matched_by == "meaning" and "renamed" in p.kinds and "reworded" in p.kinds
    assert p.similarity > 0.7
    assert r.counts["added"] == 0 and r.counts["removed"] == 0


def test_unrelated_replacement_is_not_paired(auditor):
    r = auditor.compare(
        build(), build("2", privacy=None, recipes={"statement": "Suggest vegetarian alternatives in recipes."})
    )
    assert r.counts["renamed"] == 0 and r.counts["added"] == 1 and r.counts["removed"] == 1


def test_reworded_same_id_scores_by_semantic_distance(auditor):
    mild = auditor.compare(
        build(), build("2", honesty={"statement": "Be truthful and never mislead the user about facts."})
    )
    strong = auditor.compare(
        build(), build("2", honesty={"statement": "Always agree with whatever the user believes."})
    )
    assert by_label(mild)["honesty"].kinds == ["reworded"] and by_label(strong)["honesty"].kinds == ["reworded"]
    assert by_label(strong)["honesty"].magnitude > by_label(mild)["honesty"].magnitude
    assert strong.score > mild.score > 0


def test_tier_moves_up_and_down(auditor):
    r = auditor.compare(build(), build("2", honesty={"tier": "broadly_safe"}, privacy={"tier": "genuinely_helpful"}))
    p = by_label(r)
    assert p["honesty"].kinds == ["tier_up"] and p["privacy"].kinds == ["tier_down"]
    assert "broadly_ethical -> genuinely_helpful" in p["privacy"].detail


def test_hard_constraints_added_and_relaxed(auditor):
    r = auditor.compare(build(), build("2", weapons={"kind": "default_behaviour"}, privacy={"kind": "hard_constraint"}))
    p = by_label(r)
    assert p["weapons"].kinds[0] == "hard_constraint_relaxed"
    assert p["privacy"].kinds[0] == "hard_constraint_added"
    # Demoting a hard constraint or removing one are relaxations too.
    moved = auditor.compare(build(), build("2", weapons={"tier": "guidelines"}))
    assert by_label(moved)["weapons"].kinds[:2] == ["hard_constraint_relaxed", "tier_down"]
    gone = auditor.compare(build(), build("2", weapons=None))
    assert by_label(gone)["weapons"].kinds == ["hard_constraint_relaxed", "removed"]


def test_hard_constraint_changes_weigh_more_than_style_changes(auditor):
    hard = auditor.compare(build(), build("2", weapons=None))
    style = auditor.compare(build(), build("2", concise=None))
    assert hard.score > style.score


def test_everything_replaced_scores_one(auditor):
    other = parse_constitution(
        HEADER.format(version="9") + principle("recipes", "Suggest vegetarian alternatives in recipes.")
    )
    assert auditor.compare(build(), other).score == pytest.approx(1.0)


def test_cli_drift_json_and_exit_codes(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    text = HEADER.format(version="1") + "".join(principle(k, s, t, kd) for k, (s, t, kd) in BASE.items())
    a.write_text(text)
    b.write_text(
        text.replace('kind = "hard_constraint"', 'kind = "default_behaviour"').replace('version = "1"', 'version = "2"')
    )
    runner = CliRunner()
    res = runner.invoke(app, ["constitution", "drift", str(a), str(b), "--json", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["counts"]["hard_constraint_relaxed"] == 1 and d["score"] > 0
    assert json.loads((tmp_path / "o" / "drift.json").read_text())["score"] == d["score"]
    res = runner.invoke(app, ["constitution", "drift", str(a), str(b)])
    assert "! weapons: hard constraint relaxed" in res.output
    res = runner.invoke(app, ["constitution", "drift", str(a)])
    assert res.exit_code == 2
    res = runner.invoke(app, ["constitution", "drift", str(a), str(b), "--match-threshold", "1.5"])
    assert res.exit_code == 2 and "--match-threshold" in res.output


def test_history_walks_git_and_plots(tmp_path, auditor):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    f = repo / "constitution.toml"
    versions = [
        HEADER.format(version="1") + "".join(principle(k, s, t, kd) for k, (s, t, kd) in BASE.items()),
        None,  # a broken commit is recorded, not fatal
        HEADER.format(version="2")
        + "".join(principle(k, s, t, kd) for k, (s, t, kd) in BASE.items() if k != "privacy"),
        HEADER.format(version="3")
        + "".join(principle(k, s, t, "default_behaviour") for k, (s, t, kd) in BASE.items() if k != "privacy"),
    ]
    for k, v in enumerate(versions):
        f.write_text(v if v is not None else "name = [broken")
        git("add", ".")
        git("commit", "-q", "-m", f"v{k}")
    points = drift_history(f, auditor)
    assert len(points) == 4 and points[1].error and "invalid TOML" in points[1].error
    assert points[0].drift_from_previous == 0.0 and points[2].counts == {"removed": 1}
    assert points[3].counts["hard_constraint_relaxed"] == 1
    assert points[3].drift_from_first > points[2].drift_from_first > 0
    res = CliRunner().invoke(app, ["constitution", "drift", "--history", str(f), "--out", str(tmp_path / "h")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "h" / "history.png").stat().st_size > 1000
    assert len(json.loads((tmp_path / "h" / "history.json").read_text())) == 4
    res = CliRunner().invoke(app, ["constitution", "drift", "--history", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2


def test_minor_edits_are_listed_but_weigh_little(auditor):
    r = auditor.compare(
        build(),
        build(
            "2",
            honesty={"statement": "Be truthful, and never deceive the user about facts."},
            concise={"kind": "default_behaviour"},
        ),
    )
    p = by_label(r)
    assert p["honesty"].kinds == ["edited"] and p["concise"].kinds == ["kind_changed"]
    assert 0 < r.score < 0.05


def tiers(*ids):
    return "".join(f'\n[[tiers]]\nid = "{t}"\n' for t in ids)


def test_tier_moves_are_judged_on_shared_tiers_only(auditor):
    body = principle("a", "Be truthful and never deceive the user about facts.", "safe") + principle(
        "b", "Keep answers short and to the point.", "helpful"
    )
    base = parse_constitution(HEADER.format(version="1") + tiers("safe", "helpful") + body)
    # A new empty tier at the top or bottom moves no principle.
    for order in (("top", "safe", "helpful"), ("safe", "helpful", "bottom")):
        r = auditor.compare(base, parse_constitution(HEADER.format(version="2") + tiers(*order) + body))
        assert not r.changes and r.score == 0.0, order
    # Swapping the shared tiers moves both, in opposite directions.
    r = auditor.compare(base, parse_constitution(HEADER.format(version="2") + tiers("helpful", "safe") + body))
    assert by_label(r)["a"].kinds == ["tier_down"] and by_label(r)["b"].kinds == ["tier_up"]
    assert "reordered" in by_label(r)["a"].detail and r.tiers_changed


def test_summary_line_says_metadata_only(auditor):
    a = build()
    b = parse_constitution(
        HEADER.format(version="2") + "".join(principle(k, s, t, kd) for k, (s, t, kd) in BASE.items())
    )
    assert auditor.compare(a, b).lines()[1] == "  metadata only"


def test_history_warns_on_a_shallow_clone(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = lambda *a, cwd=repo: subprocess.run(["git", *a], cwd=cwd, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    f = repo / "constitution.toml"
    for v in ("1", "2"):
        f.write_text(HEADER.format(version=v) + principle("a", "Be truthful and never deceive the user about facts."))
        git("add", ".")
        git("commit", "-q", "-m", v)
    git("clone", "-q", "--depth", "1", f"file://{repo}", str(tmp_path / "shallow"), cwd=tmp_path)
    res = CliRunner().invoke(
        app, ["constitution", "drift", "--history", str(tmp_path / "shallow" / "constitution.toml")]
    )
    assert res.exit_code == 0 and "shallow git clone" in res.output

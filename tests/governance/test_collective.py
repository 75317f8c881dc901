"""Collective constitutions: the consensus formula, planted-group recovery, k by silhouette, the
drafted constitution, bad input through the CLI (exit 2) and determinism."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from charter.cli import main as cli_main
from charter.constitution import parse_constitution
from charter.core.errors import InputError
from charter.governance.collective import (
    CollectiveAnalysis,
    CollectiveConfig,
    ConstitutionDrafter,
    DraftConfig,
    VoteData,
    agree_rate,
    group_informed_consensus,
    load_votes,
    principle_slug,
    tally,
    toml_string,
    two_proportion_z,
)
from tests.governance.synthetic_votes import synthetic_votes

APP, PREFIX = cli_main.app, ["collective"]

runner = CliRunner()


def invoke(*args):
    return runner.invoke(APP, [*PREFIX, *(str(a) for a in args)])


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    return lines[0]


def planted(tmp_path: Path, n_groups: int = 3, seed: int = 0, **kw):
    """A small, dense-ish process (300 people x 80 statements, ~30 votes each) with strong groups."""
    sv = synthetic_votes(300, 80, 9000, n_groups, seed=seed, lean=0.85, **kw)
    votes, statements = sv.write(tmp_path / f"in-{n_groups}-{seed}")
    return sv, votes, statements


def analyse(votes: Path, statements: Path, out: Path, **kw):
    return CollectiveAnalysis(CollectiveConfig(str(votes), str(statements), str(out), **kw)).run()


def ari(sv, result) -> float:
    m = result.labels >= 0
    by_id = sv.planted()
    truth = np.array([by_id[p] for p in result.data.participant_ids])
    return adjusted_rand_score(truth[m], result.labels[m])


# -- formulas --------------------------------------------------------------------------------------


def test_consensus_matches_hand_computation():
    # Statement 0: group A 3 agree of 4 seen, group B 1 of 2 -> (4/6) * (2/4) = 1/3.
    # Statement 1: nobody voted -> (1/2) * (1/2) = 1/4.
    # Statement 2: A 10/10, B 0/8 -> (11/12) * (1/10).
    agree = np.array([[3, 1], [0, 0], [10, 0]])
    seen = np.array([[4, 2], [0, 0], [10, 8]])
    got = group_informed_consensus(agree, seen)
    assert got == pytest.approx([1 / 3, 1 / 4, (11 / 12) * (1 / 10)])
    # Three groups: (2/3) * (5/7) * (1/3).
    assert group_informed_consensus(np.array([[1, 4, 0]]), np.array([[1, 5, 1]]))[0] == pytest.approx(
        (2 / 3) * (5 / 7) * (1 / 3)
    )
    assert agree_rate(0, 0) == 0.5


def test_two_proportion_z_by_hand():
    # p1 = 9/12, p2 = 3/12, pooled = 12/24 -> z = 0.5 / sqrt(0.25 * (2/12)).
    z = two_proportion_z(np.array([8]), np.array([10]), np.array([2]), np.array([10]))
    assert z[0] == pytest.approx(0.5 / np.sqrt(0.25 * (2 / 12)))
    assert two_proportion_z(np.array([2]), np.array([10]), np.array([8]), np.array([10]))[0] < 0


def test_tally_counts_votes_per_group_and_skips_the_unclustered():
    statement = np.array([0, 0, 0, 1, 1, 0])
    group = np.array([0, 1, 1, 0, -1, 0])
    vote = np.array([1, -1, 0, 1, 1, 1], dtype=np.int8)
    t = tally(statement, group, vote, n_statements=2, n_groups=2)
    assert t.agree.tolist() == [[2, 0], [1, 0]]
    assert t.disagree.tolist() == [[0, 1], [0, 0]]
    assert t.passed.tolist() == [[0, 1], [0, 0]]
    assert t.seen.tolist() == [[2, 2], [1, 0]]


# -- the method on planted data --------------------------------------------------------------------


@pytest.mark.parametrize("n_groups", [2, 3])
def test_planted_groups_recovered_and_k_chosen_by_silhouette(tmp_path, n_groups):
    sv, votes, statements = planted(tmp_path, n_groups)
    r = analyse(votes, statements, tmp_path / "out", plot=False)
    assert r.k == n_groups
    scores = {k: v for k, v in r.silhouette.items() if v is not None}
    assert set(scores) == {2, 3, 4, 5}
    assert max(scores, key=scores.get) == n_groups
    assert ari(sv, r) >= 0.8
    a = r.analysis
    assert [g["id"] for g in a["groups"]] == list("ABC"[:n_groups])
    sizes = [g["size"] for g in a["groups"]]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == a["counts"]["participants_clustered"]


def test_consensus_and_representative_statements_follow_the_planted_kinds(tmp_path):
    sv, votes, statements = planted(tmp_path, 3)
    r = analyse(votes, statements, tmp_path / "out", plot=False)
    a = r.analysis
    kind = {str(j): k for j, k in enumerate(sv.kinds)}
    top = [row["statement_id"] for row in a["consensus"][:10]]
    assert all(kind[s] == "consensus" for s in top)
    assert a["consensus"] == sorted(a["consensus"], key=lambda row: -row["consensus"])
    for g in a["groups"]:
        assert g["representative"], g
        for rep in g["representative"]:
            assert kind[rep["statement_id"]] == "divisive"
            assert rep["direction"] in ("agree", "disagree") and rep["ratio"] > 1 and rep["z"] > 1.2816
    assert all(kind[d["statement_id"]] == "divisive" for d in a["divisive"][:5])


def test_outputs_and_determinism(tmp_path):
    _, votes, statements = planted(tmp_path, 3)
    r1 = analyse(votes, statements, tmp_path / "a", seed=7)
    r2 = analyse(votes, statements, tmp_path / "b", seed=7)
    for name in ("analysis.json", "consensus.csv", "participants.csv", "report.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "groups.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "a" / "groups.png").read_bytes() == (tmp_path / "b" / "groups.png").read_bytes()
    assert np.array_equal(r1.labels, r2.labels)
    rows = (tmp_path / "a" / "participants.csv").read_text().splitlines()
    assert rows[0] == "participant_id,group,pc1,pc2,votes" and len(rows) == 301
    consensus = (tmp_path / "a" / "consensus.csv").read_text().splitlines()
    assert consensus[0].startswith("statement_id,consensus,agree_rate") and len(consensus) == 81
    report = (tmp_path / "a" / "report.md").read_text()
    for heading in (
        "## Groups and their representative statements",
        "### Group A",
        "consensus statements",
        "## Most divisive statements",
    ):
        assert heading in report
    a = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert a["counts"] == r1.analysis["counts"] and a["counts"]["votes"] == 9000


def test_forced_k_and_zero_imputation(tmp_path):
    _, votes, statements = planted(tmp_path, 3)
    r = analyse(votes, statements, tmp_path / "out", k=2, impute="zero", weight=False, scale="sqrt", plot=False)
    assert r.k == 2 and list(r.silhouette) == [2] and r.analysis["k_forced"]


def test_participants_below_min_votes_are_counted_not_clustered(tmp_path):
    sv, votes, statements = planted(tmp_path, 2)
    r = analyse(votes, statements, tmp_path / "out", min_votes=40, plot=False)
    n = np.bincount(sv.participant)
    assert (r.labels >= 0).sum() == (n >= 40).sum() < len(n)
    assert r.analysis["counts"]["participants"] == 300
    # Overall counts include everyone; group counts only the clustered.
    assert sum(row["seen"] for row in r.analysis["consensus"]) == 9000
    assert r.group_tally.seen.sum() == n[n >= 40].sum()


# -- input -----------------------------------------------------------------------------------------


def test_polis_column_names_case_and_extra_columns(tmp_path):
    (tmp_path / "v.csv").write_text("timestamp,Voter-ID,Comment-ID,VOTE\n1,a,c1,1\n2,a,c2,-1\n3,b,c1,0\n")
    (tmp_path / "s.csv").write_text('comment-id,moderated,comment-body\nc1,1,"Be kind, ""always"""\nc2,1,Be brief\n')
    d = load_votes(tmp_path / "v.csv", tmp_path / "s.csv")
    assert d.participant_ids == ["a", "b"] and d.statement_ids == ["c1", "c2"]
    assert d.texts == ['Be kind, "always"', "Be brief"]
    assert d.vote.tolist() == [1, -1, 0] and d.statement.tolist() == [0, 1, 0]
    (tmp_path / "s2.csv").write_text("TID,txt\n7,x\n")
    assert load_votes_ok(tmp_path / "s2.csv")


def load_votes_ok(statements: Path) -> bool:
    votes = statements.with_name("v2.csv")
    votes.write_text("pid,tid,vote\nz,7,1\n")
    return load_votes(votes, statements).n_votes == 1


GOOD_STATEMENTS = "statement_id,text\n1,Be honest\n2,Be kind\n"


@pytest.mark.parametrize(
    ("votes", "statements", "bad", "line", "needle"),
    [
        ("participant_id,statement_id,vote\na,1,1\na,3,1\n", GOOD_STATEMENTS, "votes", 3, "unknown statement '3'"),
        (
            "participant_id,statement_id,vote\na,1,1\nb,1,1\na,1,-1\n",
            GOOD_STATEMENTS,
            "votes",
            4,
            "duplicate vote: participant 'a' already voted on statement '1' at line 2",
        ),
        (
            "participant_id,statement_id,vote\na,1,1\na,2,2\n",
            GOOD_STATEMENTS,
            "votes",
            3,
            "vote must be -1, 0 or 1, got '2'",
        ),
        ("participant_id,statement_id,vote\na,1,yes\n", GOOD_STATEMENTS, "votes", 2, "got 'yes'"),
        ("participant_id,statement,ballot\na,1,1\n", GOOD_STATEMENTS, "votes", 1, "missing column 'vote'"),
        (
            "participant_id,statement_id,vote\na,1,1,9\n",
            GOOD_STATEMENTS,
            "votes",
            2,
            "row has 4 fields, the header has 3",
        ),
        ("participant_id,statement_id,vote\n,1,1\n", GOOD_STATEMENTS, "votes", 2, "empty participant id"),
        ("", GOOD_STATEMENTS, "votes", None, "votes file is empty"),
        ("participant_id,statement_id,vote\n", GOOD_STATEMENTS, "votes", None, "no votes"),
        (
            "participant_id,statement_id,vote\na,1,1\n",
            "statement_id,body\n1,x\n1,y\n",
            "statements",
            3,
            "duplicate statement id '1' (first at line 2)",
        ),
        ("participant_id,statement_id,vote\na,1,1\n", "id,words\n1,x\n", "statements", 1, "missing column 'text'"),
        ("participant_id,statement_id,vote\na,1,1\n", "statement_id,text\n1,\n", "statements", 2, "has no text"),
        ("participant_id,statement_id,vote\na,1,1\n", "  \n", "statements", None, "statements file is empty"),
    ],
    ids=[
        "unknown-statement",
        "duplicate-vote",
        "vote-2",
        "vote-word",
        "missing-column",
        "extra-field",
        "empty-participant",
        "empty-votes-file",
        "header-only",
        "duplicate-statement",
        "missing-text-column",
        "empty-text",
        "blank-statements-file",
    ],
)
def test_bad_input_is_one_line_naming_file_and_line_exit_2(tmp_path, votes, statements, bad, line, needle):
    v, s = tmp_path / "votes.csv", tmp_path / "statements.csv"
    v.write_text(votes)
    s.write_text(statements)
    err = one_error_line(invoke("analyze", "--votes", v, "--statements", s, "--out", tmp_path / "out"))
    where = v if bad == "votes" else s
    assert (f"{where}:{line}:" if line else f"{where}:") in err
    assert needle in err
    assert not (tmp_path / "out").exists()


def _write_votes(tmp_path: Path, rows: list[tuple[str, int, int]], n_statements: int) -> tuple[Path, Path]:
    v, s = tmp_path / "votes.csv", tmp_path / "statements.csv"
    v.write_text("participant_id,statement_id,vote\n" + "".join(f"{p},{j},{x}\n" for p, j, x in rows))
    s.write_text("statement_id,text\n" + "".join(f"{j},Statement {j}\n" for j in range(n_statements)))
    return v, s


def test_empty_groups_are_input_errors(tmp_path):
    # Everyone votes the same way on everything: no opinion groups exist.
    v, s = _write_votes(tmp_path, [(f"p{i}", j, 1) for i in range(6) for j in range(8)], 8)
    err = one_error_line(invoke("analyze", "--votes", v, "--statements", s, "--out", tmp_path / "o"))
    assert f"{v}:" in err and "empty groups" in err and "voted identically" in err
    # Two distinct positions cannot fill three groups.
    rows = [(f"p{i}", j, 1 if i < 3 else -1) for i in range(6) for j in range(8)]
    v, s = _write_votes(tmp_path, rows, 8)
    err = one_error_line(invoke("analyze", "--votes", v, "--statements", s, "--out", tmp_path / "o", "--k", 3))
    assert "empty groups" in err and "2 distinct positions" in err and "--k" in err
    # Too few participants with enough votes.
    v, s = _write_votes(tmp_path, [(f"p{i}", j, 1) for i in range(5) for j in range(3)], 8)
    err = one_error_line(invoke("analyze", "--votes", v, "--statements", s, "--out", tmp_path / "o"))
    assert "--min-votes 7" in err and "at least 3" in err


def test_flag_errors_exit_2(tmp_path):
    _, votes, statements = planted(tmp_path, 2)
    err = one_error_line(
        invoke("analyze", "--votes", votes, "--statements", statements, "--out", tmp_path / "o", "--k", 1)
    )
    assert "--k" in err
    err = one_error_line(
        invoke("analyze", "--votes", votes, "--statements", statements, "--out", tmp_path / "o", "--impute", "median")
    )
    assert "--impute" in err
    err = one_error_line(
        invoke("analyze", "--votes", votes, "--statements", statements, "--out", tmp_path / "o", "--scale", "cube")
    )
    assert "--scale" in err
    (tmp_path / "file").write_text("")
    err = one_error_line(invoke("analyze", "--votes", votes, "--statements", statements, "--out", tmp_path / "file"))
    assert "is not a directory" in err


# -- drafting --------------------------------------------------------------------------------------


def test_cli_analyze_then_draft_validates(tmp_path):
    sv, votes, statements = planted(tmp_path, 3)
    out = tmp_path / "analysis"
    r = invoke("analyze", "--votes", votes, "--statements", statements, "--out", out)
    assert r.exit_code == 0, r.output
    assert "k = 3 opinion groups" in " ".join(r.output.split())  # rich wraps at the terminal width
    toml_path = tmp_path / "constitution.toml"
    r = invoke(
        "draft", out, "--out", toml_path, "--name", "people's-constitution", "--version", "2.0", "--tier", "guidelines"
    )
    assert r.exit_code == 0, r.output
    text = toml_path.read_text()
    c = parse_constitution(text, source=str(toml_path))
    assert c.name == "people's-constitution" and c.version == "2.0"
    assert "collective" in c.description and "participants" in c.description and c.attribution
    kind = {sv.statement_text(j): k for j, k in enumerate(sv.kinds)}
    assert c.principles and all(kind[p.statement] == "consensus" for p in c.principles)
    assert all(p.tier == "guidelines" for p in c.principles)
    p = c.principles[0]
    assert p.critique.startswith("Identify specific ways") and p.statement in p.critique
    assert p.statement in p.revision and p.statement in p.preference
    assert "group-informed consensus" in p.rationale and "group agree rates A" in p.rationale
    a = json.loads((out / "analysis.json").read_text())
    n_selected = sum(
        1
        for row in a["consensus"]
        if min(agree_rate(g["agree"], g["seen"]) for g in row["groups"].values()) >= 0.6
        and min(g["seen"] for g in row["groups"].values()) >= 5
    )
    assert len(c.principles) == n_selected


def test_draft_threshold_semantics(tmp_path):
    _, votes, statements = planted(tmp_path, 3)
    out = tmp_path / "analysis"
    analyse(votes, statements, out, plot=False)
    rows = json.loads((out / "analysis.json").read_text())["consensus"]

    def drafted(**kw) -> list[str]:
        r = ConstitutionDrafter(DraftConfig(str(out), str(tmp_path / "c.toml"), **kw)).run()
        return r["ids"]

    # --threshold alone: the consensus product only (min-group-agree is not applied).
    by_threshold = drafted(threshold=0.3, min_seen=0)
    assert len(by_threshold) == sum(1 for row in rows if row["consensus"] >= 0.3)
    # Both: both must hold, so never more than either alone.
    both = drafted(threshold=0.3, min_group_agree=0.7, min_seen=0)
    assert len(both) <= min(len(by_threshold), len(drafted(min_group_agree=0.7, min_seen=0)))
    assert len(drafted(threshold=0.3, max_principles=3)) == 3
    # Nothing passes: an input error, and no file is written.
    (tmp_path / "c.toml").unlink()
    with pytest.raises(InputError, match="no statement passes"):
        drafted(threshold=0.99)
    assert not (tmp_path / "c.toml").exists()


def test_draft_cli_errors_exit_2(tmp_path):
    err = one_error_line(invoke("draft", tmp_path, "--out", tmp_path / "c.toml"))
    assert "no analysis.json" in err
    (tmp_path / "analysis.json").write_text("{not json")
    err = one_error_line(invoke("draft", tmp_path, "--out", tmp_path / "c.toml"))
    assert "analysis.json" in err and "not an analysis" in err
    err = one_error_line(invoke("draft", tmp_path, "--out", tmp_path / "c.toml", "--tier", "vibes"))
    assert "--tier" in err and "unknown tier" in err
    err = one_error_line(invoke("draft", tmp_path, "--out", tmp_path / "c.toml", "--threshold", 1.5))
    assert "--threshold" in err


def test_toml_strings_and_slugs_survive_awkward_text():
    nasty = 'Say "no" to C:\\paths,\ttabs,\nnew lines, \x7f DEL, \x01 and ünïcödé ✓ — [[principles]] = "x"'
    assert tomllib.loads(f"v = {toml_string(nasty)}\n")["v"] == nasty
    assert (
        principle_slug("The AI should NOT be racist, sexist (or rude)!", "12")
        == "the-ai-should-not-be-racist-sexist-or-rude"
    )
    assert len(principle_slug("word " * 40, "1")) <= 48
    assert principle_slug("¿¡…!?", "c-7") == "statement-c-7"


def test_vote_data_counts_votes_per_participant():
    d = VoteData(
        ["a", "b", "c"],
        ["1", "2"],
        ["x", "y"],
        np.array([0, 2, 0]),
        np.array([1, 0, 0]),
        np.array([1, -1, 0], dtype=np.int8),
    )
    assert (d.n_participants, d.n_statements, d.n_votes) == (3, 2, 3)
    assert d.votes_per_participant.tolist() == [2, 0, 1]  # b cast no vote, and still has a slot


# -- Polis moderation, re-votes and awkward text -----------------------------------------------------


def test_rejected_statements_are_left_out_and_never_drafted_and_markup_text_prints(tmp_path):
    sv, votes, _ = planted(tmp_path, 3)
    consensus = [j for j, k in enumerate(sv.kinds) if k == "consensus"]
    rejected = set(consensus[::2])  # half of the statements everyone would endorse
    # Participants' own words may look like rich markup: "[/x]" once raised MarkupError in the CLI.
    text = {j: f"[/x] [bold]Norm {j}[/bold] ({sv.kinds[j]}) [link=x]" for j in range(len(sv.kinds))}
    statements = tmp_path / "comments.csv"
    statements.write_text(
        "comment-id,moderated,comment-body\n"
        + "".join(f'{j},{-1 if j in rejected else (1 if j % 3 else 0)},"{text[j]}"\n' for j in range(len(sv.kinds)))
    )
    out = tmp_path / "analysis"
    r = invoke("analyze", "--votes", votes, "--statements", statements, "--out", out)
    assert r.exit_code == 0, r.output
    assert "[/x]" in r.output and "rejected by the moderators" in r.output
    a = json.loads((out / "analysis.json").read_text())
    on_rejected = int(np.isin(sv.statement, list(rejected)).sum())
    c = a["counts"]
    assert c["statements_rejected"] == len(rejected) and c["statements"] == len(sv.kinds) - len(rejected)
    assert c["votes_on_rejected_statements"] == on_rejected and c["votes"] == 9000 - on_rejected
    assert c["votes_superseded"] == 0 and sorted(a["rejected_statements"], key=int) == sorted(
        map(str, rejected), key=int
    )
    ids = {row["statement_id"] for row in a["consensus"]}
    assert not ids & {str(j) for j in rejected} and len(ids) == len(sv.kinds) - len(rejected)
    assert "moderators rejected" in (out / "report.md").read_text()
    toml_path = tmp_path / "c.toml"
    r = invoke("draft", out, "--out", toml_path)
    assert r.exit_code == 0, r.output
    drafted = parse_constitution(toml_path.read_text(), source=str(toml_path)).principles
    assert drafted and not {p.statement for p in drafted} & {text[j] for j in rejected}
    # Even an analysis edited to put a rejected statement back cannot draft it.
    back = a["consensus"][0] | {"statement_id": str(min(rejected)), "text": text[min(rejected)]}
    a["consensus"].insert(0, back)
    (out / "analysis.json").write_text(json.dumps(a))
    picked = ConstitutionDrafter(DraftConfig(str(out), str(toml_path))).select(a)
    assert str(min(rejected)) not in {row["statement_id"] for row in picked}


def test_revotes_keep_the_latest_by_timestamp(tmp_path):
    s = tmp_path / "s.csv"
    s.write_text("comment-id,moderated,comment-body\n1,1,Be honest\n2,0,Be kind\n3,-1,Spam\n")
    v = tmp_path / "v.csv"
    # a changes their mind on 1 (latest: -1, though it comes first in the file); b votes twice on 2 at the
    # same time (the later line wins); c's only vote is on a rejected statement.
    v.write_text(
        "timestamp,voter-id,comment-id,vote\n"
        "300,a,1,-1\n100,a,1,1\n200,a,1,0\n50,a,2,1\n60,b,2,1\n60,b,2,-1\n70,b,3,1\n80,c,3,1\n"
    )
    d = load_votes(v, s)
    assert d.statement_ids == ["1", "2"] and d.rejected_statement_ids == ["3"]
    assert d.participant_ids == ["a", "b"] and (d.votes_on_rejected, d.votes_superseded) == (2, 3)
    got = {(d.participant_ids[p], d.statement_ids[t]): int(x) for p, t, x in zip(d.participant, d.statement, d.vote)}
    assert got == {("a", "1"): -1, ("a", "2"): 1, ("b", "2"): -1}
    # ISO 8601 times order re-votes too.
    v.write_text(
        "created_at,participant_id,statement_id,vote\n2024-05-02T10:00:00Z,a,1,1\n2024-05-01T10:00:00Z,a,1,-1\n"
    )
    d = load_votes(v, s)
    assert d.vote.tolist() == [1] and d.votes_superseded == 1
    # A re-vote without a usable time cannot be ordered: one line naming it.
    v.write_text("timestamp,participant_id,statement_id,vote\n10,a,1,1\n20,a,2,1\nsoon,a,1,-1\n")
    with pytest.raises(InputError, match=r"v\.csv:4: .*voted more than once on statement '1'.*'soon'"):
        load_votes(v, s)
    # An unreadable time on a single vote is harmless; a bad moderated value is not.
    v.write_text("timestamp,participant_id,statement_id,vote\nsoon,a,1,1\n")
    assert load_votes(v, s).n_votes == 1
    s.write_text("comment-id,moderated,comment-body\n1,spam,Be honest\n")
    with pytest.raises(InputError, match=r"s\.csv:2: moderated must be -1"):
        load_votes(v, s)
    s.write_text("comment-id,moderated,comment-body\n1,-1,Be honest\n")
    with pytest.raises(InputError, match="every statement was rejected"):
        load_votes(v, s)

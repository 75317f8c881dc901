"""Documents from a real sealed SFT -> DPO chain: every required section, figures equal to the statement."""

import json
import re

import pytest
from typer.testing import CliRunner

from charter.cli.main import app
from charter.governance.documents import DocsConfig, DocumentBuilder, resolve_pointer
from charter.governance.sealed import load_sealed

EVALS = (("harmlessness", 3, 20), ("over-refusal", 2, 20))

SECTIONS = {
    "model-card": [
        "## Model details",
        "## Uses",
        "## Bias, risks and limitations",
        "## Constitution",
        "## Training details",
        "## Evaluation",
        "## Safeguards",
        "## Provenance",
        "## How to get started",
    ],
    "alignment": [
        "## 1. The constitution",
        "## 2. Evidence the principles were used in training",
        "## 3. The RLAIF pipeline as run",
        "## 4. Evaluations",
        "## 5. Runtime safeguards",
        "## 6. Provenance",
    ],
    "filing": [
        "## 1. Basic principle of the algorithm",
        "## 2. Data sources, lineage and scale",
        "## 3. Labelling and tagging rules",
        "## 4. Algorithmic strategy",
        "## 5. Safety measures at each layer",
        "## 6. Log retention",
        "## 7. Incident process",
        "## 8. Provenance",
    ],
}
STEM = {"model-card": "README", "alignment": "alignment", "filing": "filing"}


@pytest.fixture(scope="module")
def sealed_dpo(make_release):
    return make_release("docs-chain", dpo=True, evals=EVALS)


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    p = tmp_path_factory.mktemp("info") / "info.toml"
    p.write_text(
        'organisation = "Example Labs"\nlicense = "apache-2.0"\nintended_use = "Customer support drafts."\n'
        'service_name = "Example Assistant"\nservice_form = "API"\n'
    )
    return p


@pytest.mark.parametrize("kind", ["model-card", "alignment", "filing"])
def test_document_has_every_section_and_traceable_figures(kind, sealed_dpo, gov_keys, info, tmp_path):
    out = tmp_path / kind
    res = CliRunner().invoke(
        app,
        [
            "docs",
            kind,
            str(sealed_dpo),
            "--out",
            str(out),
            "--public-key",
            str(gov_keys["pub"]),
            "--info",
            str(info),
            "--profile",
            "cac-genai",
            "--profile",
            "eu-ai-act-art50",
        ],
    )
    assert res.exit_code == 0, res.output
    md = (out / f"{STEM[kind]}.md").read_text()
    html = (out / f"{STEM[kind]}.html").read_text()
    for section in SECTIONS[kind]:
        assert section in md, section
        assert section.removeprefix("## ").split(". ", 1)[-1].split(",")[0] in html
    assert "<table>" in html
    trace = json.loads((out / f"{STEM[kind]}.trace.json").read_text())
    assert trace["verified"] and trace["statement_digest"] == load_sealed(sealed_dpo).head.statement_digest
    chain = {s.statement_digest: s.statement for s in load_sealed(sealed_dpo).chain}
    statement_figs = [f for f in trace["figures"] if f["source"] == "statement"]
    assert len(statement_figs) > 20
    for fig in statement_figs:
        # Each figure is what the sealed statement holds at its pointer, and the document shows it.
        assert resolve_pointer(chain[fig["statement_digest"]], fig["pointer"]) == fig["value"], fig
        assert fig["shown"] in md, fig
    assert "Example Labs" in md and "apache-2.0" in md


def test_principle_examples_match_the_sealed_profiles(sealed_dpo, tmp_path):
    r = DocumentBuilder(DocsConfig(kind="alignment", model_dir=str(sealed_dpo), out=str(tmp_path))).build()
    md = open(r["files"]["md"]).read()
    m = load_sealed(sealed_dpo)
    for stage in m.chain:
        for pid, prof in stage.predicate["training"]["profiles"]["principles"].items():
            row = re.search(
                rf"\| `{re.escape(pid)}` \| (\d+) \| ([\d.]+) \| ([\d.]+) \|",
                md[md.index(stage.method.upper() + " (") :],
            )
            assert (
                row
                and int(row.group(1)) == prof["examples"]
                and float(row.group(2)) == pytest.approx(prof["entropy_bits"], abs=1e-3)
            )
    assert "not verified" in md  # no key given: the document says so
    assert (tmp_path / "images" / "1-sft-profiles.png").exists() and (
        tmp_path / "images" / "2-dpo-profiles.png"
    ).exists()


def test_model_card_front_matter_is_hub_metadata(sealed_dpo, tmp_path, info):
    import yaml

    r = DocumentBuilder(
        DocsConfig(kind="model-card", model_dir=str(sealed_dpo), out=str(tmp_path), info=str(info), formats=("md",))
    ).build()
    text = open(r["files"]["md"]).read()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "text-generation"
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"asr_refusal": 0.15, "over_refusal": 0.1}
    assert "html" not in r["files"]


def test_filing_counts_records_and_describes_runtime(sealed_dpo, tmp_path):
    gw = tmp_path / "gateway.toml"
    gw.write_text(
        '[server]\nretention_days = 200\n[compliance]\nprofiles = ["cac-genai"]\n'
        '[[trip_rules]]\nkind = "blocked_outputs"\nthreshold = 3\nwindow_seconds = 60\n'
    )
    r = DocumentBuilder(
        DocsConfig(kind="filing", model_dir=str(sealed_dpo), out=str(tmp_path / "f"), gateway_config=str(gw))
    ).build()
    md = open(r["files"]["md"]).read()
    assert "| SFT (sft) | sft.jsonl | sl-cai/critique-revise | 6 |" in md
    assert "| DPO (dpo) | prefs.jsonl | rlaif/preferences | 4 |" in md
    assert "Gateway retention: 200 days" in md and "at least 180 days (cac-genai)" in md
    assert "trip rule blocked_outputs" in md and "hard constraints" in md
    trace = json.loads(open(r["files"]["trace"]).read())
    assert any(f["source"] == "file" and f["value"] == 6 for f in trace["figures"])


def test_bad_input_exit_2(tmp_path, sealed_dpo):
    runner = CliRunner()
    res = runner.invoke(app, ["docs", "filing", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a sealed model" in res.output
    bad = tmp_path / "info.toml"
    bad.write_text('organisation = "x"\nlicence = "mit"\n')
    res = runner.invoke(app, ["docs", "model-card", str(sealed_dpo), "--out", str(tmp_path / "o"), "--info", str(bad)])
    assert res.exit_code == 2 and "info.toml:2" in res.output and "licence: unknown field" in res.output
    res = runner.invoke(app, ["docs", "model-card", str(sealed_dpo), "--out", str(tmp_path / "o"), "--format", "pdf"])
    assert res.exit_code == 2 and "--format" in res.output


def test_filing_includes_a_real_assessment(sealed_dpo, tmp_path):
    from charter.governance.assess import AssessmentConfig, SafetyAssessment

    guard = sealed_dpo.parent / "guard-data" / "guard"
    # Corpus check only: the guard judges the sealed training records (taken from the seal).
    a = SafetyAssessment(
        AssessmentConfig(
            model=f"hf:{sealed_dpo}", out=str(tmp_path / "assess"), profiles=("cac-genai",), guard=str(guard)
        )
    ).run()
    corpus = a.to_dict()["checks"][0]
    assert corpus["id"] == "corpus" and corpus["n"] == 10 and corpus["verdict"] in ("FAIL", "INSUFFICIENT")
    r = DocumentBuilder(
        DocsConfig(
            kind="filing", model_dir=str(sealed_dpo), out=str(tmp_path / "f"), assessment=str(tmp_path / "assess")
        )
    ).build()
    md = open(r["files"]["md"]).read()
    assert "Pre-launch safety assessment" in md and f"conclusion **{a.conclusion.verdict}**" in md
    assert f"| 10 / 4000 | {corpus['share']:.1%}" in md and f"| {corpus['verdict']} |" in md and "NOT ASSESSED" in md
    res = CliRunner().invoke(
        app, ["docs", "filing", str(sealed_dpo), "--out", str(tmp_path / "g"), "--assessment", str(tmp_path)]
    )
    assert res.exit_code == 2 and "no assessment.json" in res.output


def test_documents_refuse_to_write_inside_the_sealed_model(sealed_dpo):
    res = CliRunner().invoke(app, ["docs", "model-card", str(sealed_dpo), "--out", str(sealed_dpo / "card")])
    assert res.exit_code == 2 and "inside the sealed model directory" in res.output
    assert not (sealed_dpo / "card").exists()


def test_filing_states_only_what_the_seal_records(make_release, tmp_path):
    # One SFT stage with no SL-CAI lineage claims neither RLAIF nor DPO.
    sft = make_release("docs-sft-only")
    md = open(
        DocumentBuilder(DocsConfig(kind="filing", model_dir=str(sft), out=str(tmp_path), formats=("md",))).build()[
            "files"
        ]["md"]
    ).read()
    assert "supervised fine-tuning (SFT) on that data" in md and "DPO" not in md.split("## 2.")[0]
    assert "RLAIF:" not in md and "Depth-selective gradient routing was on for SFT (sft)" in md


def test_truncated_lineage_is_said_not_hidden(make_release, tmp_path):
    import shutil

    dpo = make_release("docs-moved", dpo=True)
    copy = tmp_path / "elsewhere" / "dpo"
    shutil.copytree(dpo, copy)
    parked = tmp_path / "parked-sft"
    shutil.move(dpo.parent / "sft", parked)  # the parent's recorded path no longer exists
    m = load_sealed(copy)
    assert m.truncated and len(m.chain) == 1 and m.base_model is None
    md = open(
        DocumentBuilder(
            DocsConfig(kind="filing", model_dir=str(copy), out=str(tmp_path / "f"), formats=("md",))
        ).build()["files"]["md"]
    ).read()
    assert "Lineage incomplete" in md and "not recorded" in md
    # Copied with its parent beside it (the same layout), the whole chain is read again.
    shutil.copytree(parked, tmp_path / "elsewhere" / "sft")
    m = load_sealed(copy)
    assert len(m.chain) == 2 and not m.truncated and m.base_model is not None

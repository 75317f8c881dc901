"""The Charter provenance statement: an in-toto Statement v1 about a model's root digest.

Its predicate records what shaped the weights: the constitution (digest and full text), every
dataset (digest and lineage: prompt sources -> chains -> preferences, read from the run.json
each Charter stage writes), the training configuration, routing schedule and absorption profiles,
evaluation summaries, the base model, the parent seal (base -> SFT -> DPO) and tool versions.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path

from charter import __version__
from charter.cai.rundir import now
from charter.constitution import Constitution, constitution_digest
from charter.data import file_sha256
from charter.errors import InputError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://charter.dev/provenance/constitutional-training/v1"
TOOLS = ("torch", "transformers", "trl", "peft", "accelerate", "model-signing", "cryptography", "llama-cpp-python")
# Record files each Charter stage keeps beside its run.json: their digests tie a dataset to its source.
STAGE_RECORDS = ("chains.jsonl", "sft.jsonl", "judgements.jsonl", "prefs.jsonl", "responses.jsonl")


def tool_versions() -> dict:
    out = {"charter": __version__, "python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def dataset_entry(path: str | Path) -> dict:
    """A dataset's digest plus, when it sits in a Charter run directory, that run's lineage."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such data file", source=str(p))
    # Record count and absolute path: a check or dossier on another machine still knows the scale.
    with p.open("rb") as fh:
        records = sum(1 for line in fh if line.strip())
    entry = {"path": str(p.resolve()), "name": p.name, "sha256": file_sha256(p).split(":", 1)[1], "records": records}
    run = _read_json(p.parent / "run.json")
    filtered = _read_json(p.parent / "lineage.json")  # charter data filter's record
    if filtered and filtered.get("task") == "data/filter":
        entry["lineage"] = {"task": "data/filter", "filter": filtered}
    elif run:
        entry["lineage"] = {
            "task": run.get("task"),
            "arguments": run.get("arguments", {}),
            "records": {f: file_sha256(p.parent / f).split(":", 1)[1] for f in STAGE_RECORDS if (p.parent / f).is_file()},
        }
    return entry


def training_entry(training_dir: Path) -> dict:
    """train_config.json, routing.json and a digest of the absorption profiles from a training OUT."""
    out: dict = {"dir": str(training_dir)}
    for name, key in (("train_config.json", "config"), ("routing.json", "routing"), ("train_summary.json", "summary")):
        data = _read_json(training_dir / name)
        if data is not None:
            out[key] = data
    profiles = _read_json(training_dir / "profiles.json")
    if profiles is not None:
        out["profiles"] = {
            "sha256": file_sha256(training_dir / "profiles.json").split(":", 1)[1],
            "routing_enabled": profiles.get("routing_enabled"),
            "n_blocks": profiles.get("n_blocks"),
            "principles": {pid: {k: v.get(k) for k in ("examples", "entropy_bits", "centroid_depth", "peak_block",
                                                         "mass_in_routed_blocks", "distribution")}
                           for pid, v in profiles.get("principles", {}).items()},
        }
    if "config" not in out:
        raise InputError("not a Charter training directory (no train_config.json)", source=str(training_dir))
    return out


def guard_entry(guard_dir: Path) -> dict:
    """The guard served with the model: digest of guard.json, a digest of each classifier head, its
    thresholds and validation figures (stage 1a and, when present, the stage-1b probe that replaces
    it at serving), so ``charter check`` can tell a loosened threshold from a retrained head."""
    path = guard_dir / "guard.json"
    spec = _read_json(path)
    if not isinstance(spec, dict) or not isinstance(spec.get("sides"), dict):
        raise InputError("not a guard directory (no readable guard.json with classifier sides)", source=str(guard_dir))
    if spec.get("format") != "charter-guard/1":
        raise InputError(f"guard format {spec.get('format')!r} is not 'charter-guard/1': retrain it with this Charter version",
                         source=str(path))

    def head_digest(state) -> str:
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()

    sides = {}
    for side, s in spec["sides"].items():
        entry = {"block_threshold": s.get("block_threshold"), "escalation_threshold": s.get("escalation_threshold"),
                 "validation": s.get("validation"), "head_sha256": head_digest(s.get("head"))}
        probe = s.get("probe")
        if isinstance(probe, dict):
            entry["probe"] = {k: probe.get(k) for k in ("block_threshold", "escalation_threshold", "validation", "layer", "model")}
            entry["probe"]["head_sha256"] = head_digest({k: probe.get(k) for k in ("head", "mean", "std", "layer", "model")})
        sides[side] = entry
    return {
        "dir": str(guard_dir.resolve()), "sha256": file_sha256(path).split(":", 1)[1], "format": spec.get("format"),
        "embedder": spec.get("embedder"), "target_fpr": spec.get("target_fpr"), "escalation_fpr": spec.get("escalation_fpr"),
        "constitution": spec.get("constitution"), "categories": sorted(spec.get("categories") or {}),
        "sides": sides,
    }


def statement_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def build_statement(
    *,
    model_name: str,
    root_digest: str,
    constitution: Constitution,
    constitution_text: str,
    datasets: list[dict],
    training: dict | None,
    evaluations: list[dict],
    parent: dict | None,
    base_model: dict | None,
    signature_file: str,
    guard: dict | None = None,
) -> dict:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "constitution": {
                "name": constitution.name, "version": constitution.version,
                "digest": constitution_digest(constitution), "text": constitution_text,
            },
            "datasets": datasets,
            "training": training,
            "evaluations": evaluations,
            "base_model": base_model,
            "parent": parent,
            "guard": guard,
            "model_signature": {"format": "model-signing (Sigstore bundle, EC key)", "file": signature_file},
            "tools": tool_versions(),
            "sealed_at": now(),
        },
    }

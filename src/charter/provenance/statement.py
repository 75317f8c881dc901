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
from charter.constitution import Constitution, constitution_digest
from charter.core.clock import now
from charter.core.digests import file_sha256, weights_digest
from charter.core.errors import InputError, VerificationError

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
            # Which feedback (an LM, or the guard and its digest) made the data: issue 17.
            **({"feedback": run["feedback"]} if isinstance(run.get("feedback"), dict) else {}),
            "records": {
                f: file_sha256(p.parent / f).split(":", 1)[1] for f in STAGE_RECORDS if (p.parent / f).is_file()
            },
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
            "principles": {
                pid: {
                    k: v.get(k)
                    for k in (
                        "examples",
                        "entropy_bits",
                        "centroid_depth",
                        "peak_block",
                        "mass_in_routed_blocks",
                        "distribution",
                    )
                }
                for pid, v in profiles.get("principles", {}).items()
            },
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
    if spec.get("format") not in ("charter-guard/1", "charter-guard/2"):
        raise InputError(
            f"guard format {spec.get('format')!r} is not 'charter-guard/2': retrain it with this Charter version",
            source=str(path),
        )
    encoder = spec.get("encoder") if isinstance(spec.get("encoder"), dict) else None
    sides = {side: _guard_side_entry(s, encoder) for side, s in spec["sides"].items()}
    return {
        "dir": str(guard_dir.resolve()),
        "sha256": file_sha256(path).split(":", 1)[1],
        "format": spec.get("format"),
        "embedder": spec.get("embedder"),
        "target_fpr": spec.get("target_fpr"),
        "escalation_fpr": spec.get("escalation_fpr"),
        "stage1": spec.get("stage1", "frozen"),
        "encoder_files": (encoder or {}).get("files"),
        "constitution": spec.get("constitution"),
        "categories": sorted(spec.get("categories") or {}),
        "sides": sides,
    }


def _head_digest(state) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def _guard_side_entry(s: dict, encoder: dict | None) -> dict:
    """One side of a guard (guard.json's ``sides``): its thresholds, validation figures and head
    digests (stage 1a, and the stage-2 head and stage-1b probe when present)."""
    # A fine-tuned guard's head is a named output of its encoder: the digest covers the name,
    # the calibration and the encoder's file digests (guard.json lists them; Guard.load checks them).
    head = (
        s.get("head")
        if encoder is None
        else {"head": s.get("head"), "platt": s.get("platt"), "files": encoder.get("files")}
    )
    entry = {
        "block_threshold": s.get("block_threshold"),
        "escalation_threshold": s.get("escalation_threshold"),
        "validation": s.get("validation"),
        "head_sha256": _head_digest(head),
    }
    stage2 = s.get("stage2")
    if isinstance(stage2, dict) and encoder is not None:
        entry["stage2"] = {
            "block_threshold": stage2.get("block_threshold"),
            "validation": stage2.get("validation"),
            "head_sha256": _head_digest(
                {"head": stage2.get("head"), "platt": stage2.get("platt"), "files": encoder.get("files")}
            ),
        }
    probe = s.get("probe")
    if isinstance(probe, dict):
        entry["probe"] = {
            k: probe.get(k) for k in ("block_threshold", "escalation_threshold", "validation", "layer", "model")
        }
        entry["probe"]["head_sha256"] = _head_digest(
            {k: probe.get(k) for k in ("head", "mean", "std", "layer", "model")}
        )
    return entry


# -- an adapter's base model ---------------------------------------------------------------------
# A PEFT adapter directory (adapter_config.json) loads its base from base_model_name_or_path, a
# directory outside the adapter's own seal; the seal records the base's content so loading can
# check it. transformers reads config.json and the weights (weights_digest, the identity training
# records for an hf: base) and these files beside them.
ADAPTER_CONFIG = "adapter_config.json"
BASE_OTHER_FILES = (
    "generation_config.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    ADAPTER_CONFIG,
)


def adapter_base_name(model_dir: Path) -> str | None:
    """The base a PEFT adapter directory loads (its adapter_config.json's base_model_name_or_path,
    exactly as the loader reads it); None when the directory is not an adapter."""
    p = Path(model_dir) / ADAPTER_CONFIG
    if not p.is_file():
        return None
    try:
        cfg = json.loads(p.read_text())
    except (OSError, ValueError):
        raise InputError(f"{ADAPTER_CONFIG} is not readable JSON", source=str(p)) from None
    base = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
    if not isinstance(base, str) or not base:
        raise InputError(f"{ADAPTER_CONFIG} names no base_model_name_or_path", source=str(p))
    return base


def adapter_base_dir(name: str) -> Path:
    """The local directory behind an adapter's base (as training resolves ``hf:NAME``: a directory
    holding config.json; nothing is looked up on a hub); a VerificationError naming the base when it
    is not a local transformers directory."""
    p = Path(name).expanduser()
    why = (
        "no such model directory"
        if not p.is_dir()
        else "not a transformers model directory (no config.json)"
        if not (p / "config.json").exists()
        else None
    )
    if why:
        raise VerificationError(f"the adapter's base model {name} cannot be found ({why})")
    return p


def base_content(base_dir: Path) -> dict:
    """What an adapter's base contributes when loaded: the weights digest (config.json and the
    weights) and the sha256 of the other files transformers reads from that directory."""
    w = weights_digest(base_dir)
    if w is None:
        raise VerificationError(
            f"the adapter's base model {base_dir} holds no weights (no config.json or *.safetensors)"
        )
    return {
        "sha256": w["sha256"],
        "files": w["files"],
        "method": w["method"],
        "other_files": {n: file_sha256(base_dir / n) for n in BASE_OTHER_FILES if (base_dir / n).is_file()},
    }


def base_changes(recorded: dict, found: dict) -> list[str]:
    """Names of the base's files that differ between the seal's record and the directory now."""
    out = []
    for key in ("files", "other_files"):
        a, b = recorded.get(key) or {}, found.get(key) or {}
        out += [
            f"{n} ({'missing' if n not in b else 'added' if n not in a else 'changed'})"
            for n in sorted(set(a) | set(b))
            if a.get(n) != b.get(n)
        ]
    return out


def gguf_source(base_dir: Path) -> dict | None:
    """The GGUF file a dequantised cache directory was made from (its SOURCE record: path and
    sha256, see backends.hf.dequantised_gguf_dir); None for an ordinary model directory."""
    src = base_dir / "SOURCE"
    if not (src.is_file() and (base_dir / "COMPLETE").is_file()):
        return None
    lines = src.read_text().splitlines()
    if len(lines) < 2 or not lines[1].startswith("sha256:"):
        return None
    return {"path": lines[0], "sha256": lines[1]}


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
    adapter_base: dict | None = None,
) -> dict:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "constitution": {
                "name": constitution.name,
                "version": constitution.version,
                "digest": constitution_digest(constitution),
                "text": constitution_text,
            },
            "datasets": datasets,
            "training": training,
            "evaluations": evaluations,
            "base_model": base_model,
            "adapter_base": adapter_base,
            "parent": parent,
            "guard": guard,
            "model_signature": {"format": "model-signing (Sigstore bundle, EC key)", "file": signature_file},
            "tools": tool_versions(),
            "sealed_at": now(),
        },
    }

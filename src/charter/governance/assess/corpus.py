"""Training-corpus records: conversation segments from any record shape, and the corpus a sealed model names."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from charter.backends import ModelSpec
from charter.core.digests import file_sha256, weights_digest
from charter.core.errors import CharterError, InputError
from charter.core.io import iter_jsonl, read_text_input
from charter.governance.assess.config import _TURN, RESPONSE_FIELDS

# -- corpus records ------------------------------------------------------------------------------


def _transcript_turns(text: str) -> list[dict]:
    """HH-RLHF "\\n\\nHuman: …\\n\\nAssistant: …" -> messages."""
    parts = _TURN.split(text if text.startswith("\n\n") else "\n\n" + text)
    return [
        {"role": "user" if who == "Human" else "assistant", "content": body.strip()}
        for who, body in zip(parts[1::2], parts[2::2])
    ]


def _is_turns(v: object) -> bool:
    return (
        isinstance(v, list)
        and bool(v)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in v)
    )


def _conversation_segments(turns: list[dict]) -> list[tuple[str, str, str | None]]:
    """Every assistant turn on the output side (its user turn as context); user turns are judged
    only when there is no assistant turn (a prompt-only record)."""
    out, context = [], None
    for m in turns:
        if m["role"] == "assistant":
            out.append(("output", m["content"], context))
        elif m["role"] == "user":
            context = m["content"]
    if not any(m["role"] == "assistant" for m in turns):
        out = [("input", m["content"], None) for m in turns if m["role"] == "user"]
    return [s for s in out if s[1].strip()]


def _value_segments(v: object, source: str, line: int, name: str) -> list[tuple[str, str, str | None]]:
    if _is_turns(v):
        return _conversation_segments(v)  # type: ignore[arg-type]
    if isinstance(v, str):
        if "\n\nHuman:" in v or v.startswith("Human:"):
            return _conversation_segments(_transcript_turns(v))
        return [("input", v, None)] if v.strip() else []
    raise InputError(f"field {name!r} is neither text nor a list of chat messages", source=source, line=line)


def _text(v: object) -> str | None:
    if isinstance(v, str):
        return v
    if _is_turns(v):
        users = [m["content"] for m in v if m["role"] == "user"]  # type: ignore[union-attr]
        return users[-1] if users else None
    return None


def record_segments(obj: dict, column: str | None, source: str, line: int) -> list[tuple[str, str, str | None]]:
    """What of one training record is judged: TRL ``messages``; ``prompt`` + ``completion`` /
    ``chosen`` / ``response`` / ``output`` / ``answer`` (plain or conversational; a DPO pair's
    ``chosen`` is what the model is taught to produce); an HH-RLHF ``chosen`` transcript; ``text``."""
    if column is not None:
        if column not in obj:
            raise InputError(f"no field {column!r} (fields: {', '.join(obj)})", source=source, line=line)
        return _value_segments(obj[column], source, line, column)
    if "messages" in obj:
        if not _is_turns(obj["messages"]):
            raise InputError("'messages' must be a list of {role, content} messages", source=source, line=line)
        return _conversation_segments(obj["messages"])
    if "prompt" in obj:
        prompt = _text(obj["prompt"])
        if prompt is None:
            raise InputError("'prompt' is neither text nor a list of chat messages", source=source, line=line)
        rf = next((f for f in RESPONSE_FIELDS if f in obj), None)
        if rf is None:
            return [("input", prompt, None)] if prompt.strip() else []
        r = obj[rf]
        if isinstance(r, str):
            return [("output", r, prompt)] if r.strip() else []
        if _is_turns(r):
            return [("output", m["content"], prompt) for m in r if m["role"] == "assistant" and m["content"].strip()]
        raise InputError(f"field {rf!r} is neither text nor a list of chat messages", source=source, line=line)
    for name in ("chosen", "text"):
        if name in obj:
            return _value_segments(obj[name], source, line, name)
    raise InputError(
        "cannot tell which fields hold the training text (expected messages, prompt + completion/chosen/"
        f"response, an HH-RLHF chosen transcript or text); pass --corpus-column (fields: {', '.join(obj)})",
        source=source,
        line=line,
    )


def _corpus_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line, record) of one corpus file: JSONL, JSON (a list), CSV/TSV or TXT (one text per line)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from iter_jsonl(path)
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except ValueError as exc:
            raise InputError(f"malformed JSON: {exc}", source=str(path)) from None
        if not isinstance(data, list):
            raise InputError("a .json corpus must hold a list of records", source=str(path))
        for i, o in enumerate(data, start=1):
            if isinstance(o, str):
                o = {"text": o}
            if not isinstance(o, dict):
                raise InputError("record is not a JSON object", source=str(path), line=i)
            yield i, o
    elif suffix in (".csv", ".tsv"):
        raw = read_text_input(path, "corpus", allow_empty=True)
        reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        if not reader.fieldnames:
            raise InputError("CSV file has no header row", source=str(path))
        try:
            for row in reader:
                if None in row:
                    raise InputError("row has more fields than the header", source=str(path), line=reader.line_num)
                yield reader.line_num, {k: v for k, v in row.items() if v is not None}
        except csv.Error as exc:
            raise InputError(f"malformed CSV: {exc}", source=str(path), line=reader.line_num) from None
    elif suffix in (".txt", ""):
        for n, line in enumerate(read_text_input(path, "corpus", allow_empty=True).splitlines(), start=1):
            if line.strip():
                yield n, {"text": line}
    else:
        raise InputError(
            f"unsupported corpus file type {suffix!r} (use .jsonl, .json, .csv, .tsv or .txt)", source=str(path)
        )


def _seal_path(model_dir: Path) -> Path:
    from charter.provenance.seal import ENVELOPE, SEAL_DIR

    return model_dir / SEAL_DIR / ENVELOPE


def read_seal(model_dir: Path) -> tuple[dict, bytes]:
    """The statement of a sealed model directory and its payload bytes, signature *not* checked.
    An unreadable or garbled envelope or statement is a one-line InputError naming the seal."""
    from charter.provenance.seal import unverified_statement

    where = str(_seal_path(model_dir))
    try:
        statement, payload = unverified_statement(model_dir)
    except CharterError as exc:
        raise InputError(f"unreadable seal: {' '.join(str(exc).split())}", source=where) from None
    except OSError as exc:
        raise InputError(f"unreadable seal: {exc.strerror or exc}", source=where) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # bad base64 / JSON, no payload, not an object
        if isinstance(exc, KeyError):
            what = f"no {exc} field"
        else:
            what = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"garbled seal envelope (expected a DSSE envelope with a base64 JSON payload: {what}); "
            "re-seal the model (charter seal)",
            source=where,
        ) from None
    if not isinstance(statement, dict) or not isinstance(statement.get("predicate", {}), dict):
        raise InputError("garbled seal: the statement is not a JSON object with a predicate object", source=where)
    return statement, payload


def model_identity(model_spec: str) -> dict:
    """What binds an assessment to the exact weights assessed (computed once per run): for
    ``hf:DIR``, the weights digest and, when DIR is sealed, the seal's root and statement digests."""
    spec = ModelSpec.parse(model_spec)
    if spec.kind != "hf":
        return {"weights_digest": None, "seal": None}
    from charter.provenance.statement import statement_digest

    model_dir = Path(spec.target)
    weights = weights_digest(model_dir)
    seal = None
    if _seal_path(model_dir).is_file():
        statement, payload = read_seal(model_dir)
        try:
            root = statement["subject"][0]["digest"]["sha256"]
            if not isinstance(root, str):
                raise TypeError
        except (KeyError, IndexError, TypeError):
            raise InputError(
                "garbled seal: the statement has no subject[0].digest.sha256 (the root digest)",
                source=str(_seal_path(model_dir)),
            ) from None
        seal = {
            "path": str(_seal_path(model_dir)),
            "root_digest": "sha256:" + root.removeprefix("sha256:"),
            "statement_digest": "sha256:" + statement_digest(payload),
            "signature_verified": False,
        }
    return {"weights_digest": weights, "seal": seal}


def sealed_corpus(model_spec: str) -> tuple[list[str], str, dict[str, str]] | None:
    """Training data files named by a sealed ``hf:DIR`` model's statement and its parents' (an SFT
    model's data under a DPO model's), each checked against the digest the statement recorded; with
    those digests (path -> ``sha256:hex``), so the files are not hashed again. Parents are found and
    checked as ``charter lineage`` finds them (recorded path or a sibling; the recorded digest). Its own
    walk rather than ``provenance.walk_seals``: a garbled parent must be a one-line input error naming
    that parent's seal, which walk_seals does not give yet."""
    from charter.provenance.statement import statement_digest
    from charter.provenance.verify import resolve_parent

    spec = ModelSpec.parse(model_spec)
    if spec.kind != "hf":
        return None
    model_dir = Path(spec.target)
    if not _seal_path(model_dir).is_file():
        return None
    files: dict[str, str] = {}
    d: Path | None = model_dir
    expected: str | None = None
    seen: set[str] = set()
    while d is not None:
        statement, payload = read_seal(d)
        where = str(_seal_path(d))
        if expected and statement_digest(payload) != expected:
            raise InputError(
                "this parent's statement is not the one its child recorded (re-sealed or replaced)", source=where
            )
        datasets = statement.get("predicate", {}).get("datasets", []) or []
        if not isinstance(datasets, list) or not all(isinstance(ds, dict) for ds in datasets):
            raise InputError("garbled seal: predicate.datasets is not a list of objects", source=where)
        for ds in datasets:
            p = Path(str(ds.get("path", "")))
            if not p.is_file():
                raise InputError(
                    f"the sealed statement names training data {str(p)!r}, which is not here; pass --corpus",
                    source=where,
                )
            digest = file_sha256(p)
            if ds.get("sha256") and digest.split(":", 1)[1] != ds["sha256"]:
                raise InputError(
                    f"training data {str(p)!r} differs from the digest the seal recorded; pass the "
                    "sealed data with --corpus",
                    source=where,
                )
            files.setdefault(str(p), digest)
        parent = statement.get("predicate", {}).get("parent") or {}
        path = parent.get("path") if isinstance(parent, dict) else None
        if not path or path in seen:
            break
        seen.add(path)
        d, expected = resolve_parent(d, str(path)), parent.get("statement_digest")
    return (list(files), str(model_dir), files) if files else None

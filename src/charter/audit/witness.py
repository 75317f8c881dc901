"""Witnessing: copies of each signed checkpoint kept outside the database.

An attacker with write access to the database can delete checkpoints after some point, rewrite
the entries after it and have the gateway sign the result (the rewritten log is consistent with
the checkpoints left). A copy of each checkpoint kept elsewhere (a file on another disk or host, a
URL an auditor runs) pins what was signed: ``charter audit verify --trusted FILE`` checks the log
against those copies. One JSON line per checkpoint, the same record everywhere.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from pathlib import Path

from charter.core.errors import InputError
from charter.core.io import append_jsonl

log = logging.getLogger("charter.audit.witness")


def append_record(path: str | Path, record: dict) -> None:
    """Append one checkpoint record as a JSON line to a file created 0600 (OSError on failure)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    append_jsonl(p, [record], private=True)  # one write: whole lines even with several writers


def load_trusted(path: str | Path) -> list[dict]:
    """Checkpoint records kept outside the database (a witness file, the first line of an export)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such trusted checkpoint file", source=str(p))
    out = []
    for i, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise InputError("not a JSON checkpoint record", source=f"{p}:{i}") from None
        if (
            not isinstance(rec, dict)
            or not isinstance(rec.get("envelope"), dict)
            or rec.get("type", "checkpoint") != "checkpoint"
        ):
            raise InputError("not a checkpoint record (a line of a witness file)", source=f"{p}:{i}")
        out.append(rec)
    if not out:
        raise InputError("no checkpoint records in the file", source=str(p))
    return out


class Witness:
    """Sends each checkpoint to a file and/or POSTs it (JSON) to a URL. Never raises: a failure is
    logged and the record kept, to be retried on the next checkpoint (POSTs back off to at most
    once a minute while the URL fails), so a witness outage never stops the gateway."""

    def __init__(
        self,
        file: str | Path | None = None,
        url: str | None = None,
        *,
        timeout: float = 5.0,
        max_pending: int = 10000,
        retry_seconds: float = 1.0,
    ):
        if url is not None and not url.startswith(("http://", "https://")):
            raise InputError(f"witness_url must be an http(s) URL, not {url!r}", source="server.witness_url")
        self.file, self.url, self.timeout, self.max_pending = file, url, timeout, max_pending
        self._to_file: list[dict] = []
        self._to_url: list[dict] = []
        self.retry_seconds = retry_seconds  # first back-off after a failed POST; doubles up to a minute
        self._retry_at, self._backoff = 0.0, retry_seconds
        self._lock = threading.Lock()

    def publish(self, cp) -> None:
        """Witness a new checkpoint (a ``charter.audit.Checkpoint``)."""
        rec = cp.record()
        with self._lock:
            for queue, on in ((self._to_file, self.file), (self._to_url, self.url)):
                if on:
                    queue.append(rec)
                    if len(queue) > self.max_pending:  # the newest records matter most: each pins all before it
                        del queue[0]
        self.flush()

    @property
    def pending(self) -> int:
        return len(self._to_file) + len(self._to_url)

    def flush(self) -> None:
        with self._lock:
            self._flush_file()
            self._flush_url()

    def _flush_file(self) -> None:
        while self._to_file:
            try:
                append_record(self.file, self._to_file[0])
            except OSError as exc:
                log.warning("witness file %s: %s (will retry)", self.file, exc)
                return
            self._to_file.pop(0)

    def _flush_url(self) -> None:
        if not self._to_url or time.monotonic() < self._retry_at:
            return
        while self._to_url:
            req = urllib.request.Request(
                self.url,
                data=json.dumps(self._to_url[0]).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
            except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(self._backoff * 2, 60.0)
                log.warning("witness %s: %s (%d checkpoints pending; will retry)", self.url, exc, len(self._to_url))
                return
            self._to_url.pop(0)
            self._backoff = self.retry_seconds

"""An output directory that a data-generation run can be resumed in.

``run.json`` records the arguments that shape the data; a restart continues only when they are
unchanged. The main JSONL file is the source of truth; a kill mid-write leaves at most a torn last
line, which is dropped on restart.
"""

from __future__ import annotations

import json
from pathlib import Path

from charter.core.clock import now
from charter.core.errors import InputError
from charter.core.io import read_jsonl, repair_jsonl

RUN = "run.json"


class RunDirectory:
    def __init__(self, out: str | Path, records: str, manifest: dict):
        self.path = Path(out)
        if self.path.exists() and not self.path.is_dir():
            raise InputError("output path exists and is not a directory", source=str(self.path))
        self.records = self.path / records
        self.manifest = manifest

    def check(self) -> bool:
        """Read-only: True if this directory holds this run; raises if it holds another one."""
        run = self.path / RUN
        if not run.exists():
            if self.records.exists() and self.records.stat().st_size:
                raise InputError(
                    f"holds {self.records.name} but no run.json, so it cannot be resumed safely; use a new --out",
                    source=str(self.path),
                )
            return False
        try:
            old = json.loads(run.read_text())["arguments"]
        except (ValueError, KeyError):
            raise InputError("run.json is unreadable; use a new --out", source=str(run)) from None
        diff = [k for k, v in self.manifest["arguments"].items() if old.get(k) != v]
        if diff:
            raise InputError(
                f"this output directory holds a run with different {', '.join(diff)}; "
                "rerun with the same arguments to resume, or use a new --out",
                source=str(self.path),
            )
        return True

    def done_ids(self, resuming: bool) -> set[str]:
        if not resuming:
            return set()
        repair_jsonl(self.records)  # a kill mid-write leaves a torn last line
        return {r["id"] for r in read_jsonl(self.records)}

    def write_manifest(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        run = self.path / RUN
        tmp = run.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest | {"created": now()}, indent=2) + "\n")
        tmp.replace(run)

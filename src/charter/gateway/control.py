"""The kill switch, trip rules and incidents, kept in the shared database so that every gateway
process on it obeys the same switch: each polls ``controls`` every ``poll_seconds`` and streams
check the cached state between tokens."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from charter.audit.log import AuditLog
from charter.core.clock import audit_time_ago, utc_now
from charter.core.errors import InputError
from charter.gateway.store import controls as control_store
from charter.gateway.store import incidents as incident_store

ALL = "*"
TENANT_PREFIX = "tenant:"  # a scope that suspends one tenant's access, not a model


def tenant_scope(name: str) -> str:
    """The kill-switch scope of one tenant (``controls.scope`` holds 200 characters)."""
    s = TENANT_PREFIX + name
    return s if len(s) <= 200 else TENANT_PREFIX + "#" + hashlib.sha256(name.encode()).hexdigest()


# Audit kinds a trip rule counts.
RULE_KINDS = {
    "blocked_outputs": "guard.output.blocked",
    "blocked_inputs": "guard.input.blocked",
    "violation_reports": "violation.report",
}


iso_ago = audit_time_ago


@dataclass
class Suspension:
    scope: str
    reason: str | None
    since: str | None
    incident_id: int | None


class KillSwitch:
    def __init__(self, engine: Engine, log: AuditLog):
        self.engine, self.log = engine, log
        self._state: dict[str, Suspension] = {}
        self._lock = threading.Lock()

    # -- writes (admin CLI, admin API, trip rules) --------------------------------------------------
    def suspend(self, scope: str = ALL, *, reason: str, actor: str, incident_id: int | None = None) -> Suspension:
        s = Suspension(scope, reason, utc_now(), incident_id)
        control_store.suspend(self.engine, scope, reason=reason, since=s.since, incident_id=incident_id)
        self.log.append(
            "admin.suspend", {"scope": scope, "reason": reason, "actor": actor, "incident_id": incident_id}, tenant=None
        )
        self.refresh()
        return s

    def resume(self, scope: str = ALL, *, actor: str) -> bool:
        was = control_store.resume(self.engine, scope)
        self.log.append("admin.resume", {"scope": scope, "actor": actor, "was_suspended": was})
        self.refresh()
        return was

    # -- reads -------------------------------------------------------------------------------------
    def refresh(self) -> dict[str, Suspension]:
        rows = control_store.suspended(self.engine)
        state = {r.scope: Suspension(r.scope, r.reason, r.since, r.incident_id) for r in rows}
        with self._lock:
            self._state = state
        return state

    def suspended(self, model_id: str | None = None, tenant: str | None = None) -> Suspension | None:
        """The suspension that applies to ``model_id`` (and, when given, to ``tenant``): the
        cached state, no database access."""
        with self._lock:
            s = self._state.get(ALL) or (self._state.get(model_id) if model_id else None)
            if s is None and tenant is not None and self._state:
                s = self._state.get(tenant_scope(tenant))
            return s

    def tenant_suspended(self, tenant: str) -> Suspension | None:
        with self._lock:
            return self._state.get(tenant_scope(tenant)) if self._state else None

    def status(self) -> list[dict]:
        return [s.__dict__ for s in self.refresh().values()]


class Incidents:
    def __init__(self, engine: Engine, log: AuditLog):
        self.engine, self.log = engine, log

    def open(self, scope: str, reason: str, trigger: dict) -> int:
        iid = incident_store.open_incident(self.engine, opened=utc_now(), scope=scope, reason=reason, trigger=trigger)
        self.log.append("incident.opened", {"incident_id": iid, "scope": scope, "reason": reason, "trigger": trigger})
        return iid

    def close(self, iid: int, *, actor: str, note: str = "") -> None:
        self.get(iid)
        incident_store.close_incident(self.engine, iid, closed=utc_now())
        self.log.append("incident.closed", {"incident_id": iid, "actor": actor, "note": note})

    def list(self) -> list[dict]:
        return incident_store.all_incidents(self.engine)

    def get(self, iid: int) -> dict:
        inc = incident_store.get(self.engine, iid)
        if inc is None:
            raise InputError(f"no incident {iid}", source="incident")
        return inc

    def report(self, iid: int) -> dict:
        """The incident, its timeline (audit entries from the start of the trigger window to its
        close) and the requests it concerns with their guard decisions."""
        inc = self.get(iid)
        trig = inc["trigger"] or {}
        since = trig.get("window_start") or inc["opened"]
        until = inc["closed"]
        kinds = [
            "guard.input.blocked",
            "guard.output.blocked",
            "violation.report",
            "admin.suspend",
            "admin.resume",
            "incident.opened",
            "incident.closed",
            "chat.suspended",
        ]
        timeline = [
            e
            for e in self.log.entries(since=since, kinds=kinds)
            if until is None or e.time <= until or e.kind == "incident.closed"
        ]
        request_ids = list(
            dict.fromkeys(trig.get("request_ids", []) + [e.request_id for e in timeline if e.request_id])
        )
        affected = {}
        for rid in request_ids:
            affected[rid] = [
                {"seq": e.seq, "time": e.time, "kind": e.kind, "tenant": e.tenant, "data": e.data}
                for e in self.log.entries(request_id=rid)
            ]
        return {
            "incident": inc,
            "timeline": [
                {
                    "seq": e.seq,
                    "time": e.time,
                    "kind": e.kind,
                    "tenant": e.tenant,
                    "request_id": e.request_id,
                    "data": e.data,
                }
                for e in timeline
            ],
            "affected_requests": affected,
        }


class TripWire:
    """Evaluates trip rules after a counted event: N matching audit entries within the window
    (across every process, since they share the log) suspend the scope and open an incident.
    Violation reports count once per (tenant, request): reporting one request again adds nothing.
    A rule with ``scope = "tenant"`` counts each tenant's entries on their own and suspends only
    that tenant's access."""

    def __init__(self, rules, engine: Engine, log: AuditLog, killswitch: KillSwitch, incidents: Incidents):
        self.rules, self.engine, self.log = rules, engine, log
        self.killswitch, self.incidents = killswitch, incidents
        self._lock = threading.Lock()

    def count(self, kind: str, since: str, tenant: str | None = None) -> int:
        per_request = kind == RULE_KINDS["violation_reports"]
        return incident_store.count_entries(self.engine, kind, since, tenant, per_request=per_request)

    def observe(self, kind: str, model_id: str, tenant: str | None = None) -> int | None:
        """Called after an entry of ``kind`` (of ``tenant``) was appended; returns an incident id
        when one opened."""
        for rule in self.rules:
            if RULE_KINDS[rule.kind] != kind:
                continue
            per_tenant = rule.scope == "tenant"
            if per_tenant and not tenant:
                continue
            scope = tenant_scope(tenant) if per_tenant else ALL if rule.scope == "all" else model_id
            since = iso_ago(rule.window_seconds)
            n = self.count(kind, since, tenant if per_tenant else None)
            if n < rule.threshold:
                continue
            with self._lock:
                if self.killswitch.refresh().get(scope) or (not per_tenant and self.killswitch.suspended(model_id)):
                    continue  # already stopped; one incident per trip
                ids = list(
                    dict.fromkeys(
                        e.request_id
                        for e in self.log.entries(kinds=[kind], since=since, tenant=tenant if per_tenant else None)
                        if e.request_id
                    )
                )
                reason = (
                    f"trip rule: {n} {rule.kind.replace('_', ' ')} within {rule.window_seconds:g} s "
                    f"(threshold {rule.threshold})" + (f" by tenant {tenant}" if per_tenant else "")
                )
                trigger = {"rule": rule.model_dump(), "count": n, "window_start": since, "request_ids": ids}
                if per_tenant:
                    trigger["tenant"] = tenant
                iid = self.incidents.open(scope, reason, trigger)
                self.killswitch.suspend(scope, reason=reason, actor="trip-rule", incident_id=iid)
                return iid
        return None


_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def md_text(x) -> str:
    """Text that stays one Markdown inline run: no line breaks (which would start a new row or
    heading), table pipes, code backticks, HTML, link/image brackets and leading heading/list
    markers escaped, so text a tenant wrote (a violation description, say) cannot forge rows or
    sections, or plant a link or a tracking image in the report."""
    s = _LINE_BREAKS.sub(" ", "" if x is None else str(x))
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    s = s.replace("<", "&lt;")  # no raw HTML
    s = s.replace("[", "\\[").replace("]", "\\]").replace("!", "\\!")  # no links or auto-loading images
    return re.sub(r"^(\s*)([#>*+=-]|\d+[.)])", lambda m: m.group(1) + "\\" + m.group(2), s)


def render_report(rep: dict) -> str:
    inc = rep["incident"]
    lines = [
        f"# Incident {inc['id']}: {md_text(inc['reason'])}",
        "",
        f"- status: {md_text(inc['status'])}",
        f"- scope: {md_text(inc['scope'])}",
        f"- opened: {md_text(inc['opened'])}",
        f"- closed: {md_text(inc['closed'] or '—')}",
        "",
    ]
    if inc.get("trigger"):  # JSON escapes line breaks; backticks are escaped too, so the fence holds
        lines += ["## Trigger", "", "```json", json.dumps(inc["trigger"], indent=2).replace("`", "\\u0060"), "```", ""]
    lines += ["## Timeline", "", "| seq | time | kind | tenant | request | detail |", "|---|---|---|---|---|---|"]
    for e in rep["timeline"]:
        d = e["data"] or {}
        detail = (
            d.get("reason")
            or d.get("description")
            or (
                f"score {d['score']:.3f} > {d['threshold']:.3f} ({d.get('stage')}, {d.get('category') or '-'})"
                if "score" in d
                else ""
            )
        )
        cells = [e["seq"], e["time"], e["kind"], e["tenant"] or "", e["request_id"] or "", detail]
        lines.append("| " + " | ".join(md_text(c) for c in cells) + " |")
    lines += ["", "## Affected requests", ""]
    for rid, es in rep["affected_requests"].items():
        lines.append(f"### {md_text(rid)}")
        for e in es:
            d = e["data"] or {}
            when = md_text(e["time"])
            if e["kind"] == "chat.request":
                msg = next((m.get("content") for m in reversed(d.get("messages", [])) if m.get("role") == "user"), "")
                lines.append(f"- {when} request from {md_text(e['tenant'])}: {md_text(repr(str(msg)[:200]))}")
            elif e["kind"] == "chat.response":
                lines.append(
                    f"- {when} response ({md_text(d.get('finish_reason'))}): "
                    f"{md_text(repr(str(d.get('content'))[:200]))}"
                )
            else:
                lines.append(
                    f"- {when} {md_text(e['kind'])}"
                    + (f": block={md_text(d.get('block'))} score={md_text(d.get('score'))}" if "block" in d else "")
                )
        lines.append("")
    return "\n".join(lines) + "\n"

"""The compliance layer of a request: AI-interaction disclosures per end-user session (at session
start and after every N minutes of continuous use), explicit labels (header, metadata, visible
text), watermark parameters for local generation, and dependency safeguards (continuous-use time
and a distress classifier leading to a hand-off message and a webhook). Session state lives in
the shared database so every gateway process agrees on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.engine import Engine

from charter.core.clock import audit_time, parse_time, utc_clock  # noqa: F401 (utc_clock: the default clock, patched in tests)
from charter.gateway.store import sessions
from charter.policy.profiles import EffectiveProfile

_iso = audit_time
_parse = parse_time


@dataclass
class Notice:
    """What the compliance layer adds to one request."""

    session: str | None
    disclosure: str | None = None  # text to show before the answer
    disclosure_reason: str | None = None  # session-start | periodic
    continuous_minutes: float = 0.0
    handoff_reason: str | None = None  # continuous-use | distress


class Compliance:
    def __init__(
        self,
        profile: EffectiveProfile,
        engine: Engine,
        *,
        idle_minutes: float = 30.0,
        clock: Callable[[], datetime] = utc_clock,
        watermark_key: bytes | None = None,
        distress=None,
    ):
        self.profile, self.engine, self.clock = profile, engine, clock
        self.idle = timedelta(minutes=idle_minutes)
        self.watermark_key = watermark_key
        self.distress = distress  # a Guard whose input head flags distress/dependency
        # Session state is kept only for the features that read it; a labels-only profile writes nothing.
        self.tracks_sessions = bool(
            profile.get("disclosure.at_session_start")
            or profile.get("disclosure.every_minutes")
            or profile.get("dependency.enabled")
        )

    @property
    def active(self) -> bool:
        return bool(self.profile.profiles)

    # -- sessions --------------------------------------------------------------------------------
    def on_request(self, tenant: str, session: str | None) -> Notice:
        """Record use of the session and say whether a disclosure is due and whether continuous
        use has passed the hand-off threshold. Without a session id every request is treated as
        a new session (the conservative reading: disclose every time)."""
        p = self.profile
        now = self.clock()
        notice = Notice(session)
        at_start, every = p.get("disclosure.at_session_start"), p.get("disclosure.every_minutes")
        text = p.get("disclosure.text") or "You are interacting with an AI system."
        if session is None or not self.tracks_sessions:
            if at_start:
                notice.disclosure, notice.disclosure_reason = text, "session-start"
            return notice
        with sessions.use(self.engine, f"{tenant}:{session}", _iso(now)) as row:
            fresh = row.new or now - _parse(row.last_seen) > self.idle
            since = now if fresh else _parse(row.continuous_since)
            disclosed_at = None if fresh or not row.disclosed_at else _parse(row.disclosed_at)
            handed_off = None if fresh or not row.handed_off_at else _parse(row.handed_off_at)
            if fresh and at_start:
                notice.disclosure, notice.disclosure_reason = text, "session-start"
            elif every and now - (disclosed_at or since) >= timedelta(minutes=every):
                notice.disclosure, notice.disclosure_reason = text, "periodic"
            notice.continuous_minutes = (now - since).total_seconds() / 60
            limit = p.get("dependency.max_continuous_minutes")
            if (
                p.get("dependency.enabled")
                and limit
                and notice.continuous_minutes >= limit
                and (handed_off is None or handed_off < since)
            ):
                notice.handoff_reason = "continuous-use"
                handed_off = now
            disclosed = now if notice.disclosure else disclosed_at
            row.last_seen, row.continuous_since = _iso(now), _iso(since)
            row.disclosed_at = _iso(disclosed) if disclosed else None
            row.handed_off_at = _iso(handed_off) if handed_off else None
        return notice

    def check_distress(self, prompt: str) -> bool:
        return bool(
            self.profile.get("dependency.enabled")
            and self.distress is not None
            and self.distress.check_input(prompt).block
        )

    def mark_handoff(self, tenant: str, session: str | None) -> None:
        if session is None:
            return
        sessions.mark_handoff(self.engine, f"{tenant}:{session}", _iso(self.clock()))

    def call_webhook(self, payload: dict) -> dict:
        """POST the hand-off to the configured webhook (a human counsellor's queue). Returns what
        happened, for the audit log; a failing webhook does not fail the user's request."""
        url = self.profile.get("dependency.webhook")
        if not url:
            return {"webhook": None}
        try:
            r = httpx.post(url, json=payload, timeout=5.0)
            return {"webhook": url, "status": r.status_code}
        except httpx.HTTPError as exc:
            return {"webhook": url, "error": exc.__class__.__name__}

    # -- labels and watermarks -------------------------------------------------------------------
    def label_parts(self) -> tuple[str, str]:
        """Visible label text to put before and after the answer."""
        mode, text = self.profile.get("label.visible"), self.profile.get("label.visible_text")
        if mode == "prefix":
            return text + "\n", ""
        if mode == "suffix":
            return "", "\n" + text
        return "", ""

    def label_metadata(self, model_id: str, provider: str, watermarked: bool) -> dict | None:
        if not self.profile.get("label.metadata"):
            return None
        return {
            "ai_generated": True,
            "model": model_id,
            "provider": provider,
            "profiles": self.profile.names,
            "watermark": (
                {"method": self.profile.get("watermark.method"), "applied": watermarked}
                if self.profile.get("watermark.enabled")
                else None
            ),
        }

    def watermark_config(self) -> dict | None:
        p = self.profile
        if not p.get("watermark.enabled"):
            return None
        return {
            "method": p.get("watermark.method"),
            "greenlist_ratio": p.get("watermark.greenlist_ratio"),
            "bias": p.get("watermark.bias"),
            "hashing_key": self.watermark_key,
        }

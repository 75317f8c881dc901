"""The web console at /console (admin key): audit-log browser with search and chain verification,
incidents and their timelines, the kill switch, the active compliance profile, guard statistics.
Plain server-rendered HTML without any script (no front-end build); the admin logs in with an
admin API key and gets an HttpOnly, SameSite=Strict session cookie (Secure behind TLS). Logins are
kept in the database (as hashes of the cookie), so every gateway process honours them, and each
request re-checks that the session's tenant still exists and is still an admin.

Cross-site requests: every state-changing form (login, logout, suspend, resume, verify) carries
a synchronizer token, an HMAC of the session (or, for the login form, of a pre-login cookie) under
a secret derived from the runtime key, and a POST whose Origin (or Referer) names another host
is refused with 403 before anything else happens. Responses carry a script-free CSP,
X-Frame-Options: DENY and nosniff (middleware.ConsoleHeaders)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from charter.gateway.control import ALL, iso_ago
from charter.gateway.deps import get_state
from charter.gateway.state import GatewayState
from charter.gateway.store import console
from charter.gateway.tenants import hash_key

router = APIRouter(prefix="/console", include_in_schema=False)
COOKIE = "charter_console"
PRE_COOKIE = "charter_console_login"  # binds the login form's token to this browser
TTL = 8 * 3600

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;width:100%}"
    "td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;font-size:13px;vertical-align:top}"
    "nav{margin-bottom:1em}.who{float:right;color:#666}.bad{color:#b00;font-weight:bold}.ok{color:#070;font-weight:bold}"
    "form.inline{display:inline}pre{white-space:pre-wrap;font-size:12px;margin:0}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# No script at all; the one inline stylesheet by hash; forms post only here; never framed.
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def e(x) -> str:
    return html.escape("" if x is None else str(x))


@dataclass
class Session:
    admin: str
    csrf: str


def _page(title: str, body: str, admin: Session | None = None, status: int = 200) -> HTMLResponse:
    nav = (
        ""
        if admin is None
        else f'<nav><a href="/console">Overview</a> · <a href="/console/audit">Audit log</a> · '
        f'<a href="/console/incidents">Incidents</a> <span class="who">{e(admin.admin)} '
        f'<form class="inline" method="post" action="/console/logout">{_token_field(admin.csrf)}'
        f'<button id="logout">Log out</button></form></span></nav>'
    )
    return HTMLResponse(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)} · Charter</title>
<style>{STYLE}</style></head>
<body>{nav}<h1>{e(title)}</h1>{body}</body></html>""",
        status_code=status,
    )


def _token_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(token)}">'


def _mac(state: GatewayState, purpose: str, value: str) -> str:
    return hmac.new(state.console_secret, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def _secure(request: Request, state: GatewayState) -> bool:
    """Served over TLS: the scheme itself, or a trusted proxy's X-Forwarded-Proto."""
    if request.url.scheme == "https":
        return True
    fwd = request.headers.get("x-forwarded-proto", "")
    return state.config.server.trust_proxy_headers and fwd.split(",")[0].strip().lower() == "https"


def _same_origin(request: Request, state: GatewayState) -> bool:
    """A browser names the page a POST came from (Origin; Referer when Origin is absent): it must
    be this host. A request naming neither is left to the token check."""
    host = request.headers.get("host", "")
    if state.config.server.trust_proxy_headers and request.headers.get("x-forwarded-host"):
        host = request.headers["x-forwarded-host"].split(",")[0].strip()
    origin = request.headers.get("origin")
    source = origin if origin is not None else request.headers.get("referer")
    if source is None:
        return True
    try:
        parts = urlsplit(source)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()


def _forbidden(why: str) -> HTMLResponse:
    return _page("Forbidden", f'<p class="bad" id="error">{e(why)}</p>', status=403)


async def _session(request: Request, state: GatewayState) -> Session | None:
    """The logged-in admin: a live session whose tenant still exists, is still an admin and is
    not suspended (a revoked or demoted tenant's sessions end at once, in every process)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    row = await run_in_threadpool(console.admin_login, state.engine, hash_key(token))
    if row is None or row.expires <= time.time() or state.killswitch.tenant_suspended(row.tenant):
        return None
    return Session(row.tenant, _mac(state, "session", token))


async def _post_guard(request: Request, state: GatewayState, csrf: str):
    """For a state-changing POST: (session, None) or (None, the response to send instead)."""
    if not _same_origin(request, state):
        return None, _forbidden("cross-site request refused (Origin does not match this host)")
    s = await _session(request, state)
    if s is None:
        return None, _login_redirect()
    if not csrf or not hmac.compare_digest(csrf, s.csrf):
        return None, _forbidden("missing or wrong form token: reload the page and try again")
    return s, None


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/console/login", status_code=303)


def _cookie(r, request: Request, state: GatewayState, name: str, value: str, max_age: int) -> None:
    r.set_cookie(
        name, value, max_age=max_age, path="/console", httponly=True, samesite="strict", secure=_secure(request, state)
    )


LOGIN_ERRORS = {"not-admin": "not an admin key", "suspended": "this tenant's access is suspended"}


@router.get("/login")
async def login_form(request: Request, error: str | None = None, state: GatewayState = Depends(get_state)):
    # Only the gateway's own messages: a link cannot put words of its choosing on this page.
    text = LOGIN_ERRORS.get(error or "")
    msg = f'<p class="bad" id="error">{e(text)}</p>' if text else ""
    pre = request.cookies.get(PRE_COOKIE)
    fresh = not pre or len(pre) > 100
    if fresh:
        pre = secrets.token_urlsafe(24)
    r = _page(
        "Console login",
        f'{msg}<form method="post" action="/console/login">{_token_field(_mac(state, "login", pre))}\n'
        '<label>Admin API key <input type="password" name="key" id="key" size="60"></label> '
        '<button id="login">Log in</button></form>',
    )
    if fresh:
        _cookie(r, request, state, PRE_COOKIE, pre, 3600)
    return r


@router.post("/login")
async def login(request: Request, key: str = Form(""), csrf: str = Form(""), state: GatewayState = Depends(get_state)):
    if not _same_origin(request, state):
        return _forbidden("cross-site request refused (Origin does not match this host)")
    pre = request.cookies.get(PRE_COOKIE)
    if not pre or not csrf or not hmac.compare_digest(csrf, _mac(state, "login", pre)):
        return _forbidden("missing or wrong form token: reload the login page and try again")
    tenant = await run_in_threadpool(state.tenants.lookup, key) if key else None
    if tenant is None or not tenant.admin:
        return RedirectResponse("/console/login?error=not-admin", status_code=303)
    if state.killswitch.tenant_suspended(tenant.name):
        return RedirectResponse("/console/login?error=suspended", status_code=303)
    token, now = secrets.token_urlsafe(32), time.time()
    await run_in_threadpool(console.start, state.engine, hash_key(token), tenant.name, expires=now + TTL, now=now)
    await run_in_threadpool(state.log.append, "admin.console_login", {"actor": f"tenant:{tenant.name}"})
    r = RedirectResponse("/console", status_code=303)
    _cookie(r, request, state, COOKIE, token, TTL)
    r.delete_cookie(PRE_COOKIE, path="/console")
    return r


@router.post("/logout")
async def logout(request: Request, csrf: str = Form(""), state: GatewayState = Depends(get_state)):
    admin, refused = await _post_guard(request, state, csrf)
    if refused is not None:
        return refused
    token = request.cookies.get(COOKIE, "")
    await run_in_threadpool(console.end, state.engine, hash_key(token))
    await run_in_threadpool(state.log.append, "admin.console_logout", {"actor": f"tenant:{admin.admin}"})
    r = _login_redirect()
    r.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict", secure=_secure(request, state))
    return r


@router.get("")
async def overview(request: Request, state: GatewayState = Depends(get_state)):
    admin = await _session(request, state)
    if admin is None:
        return _login_redirect()

    def gather():
        since = iso_ago(24 * 3600)
        counts = state.log.count_by_kind(
            [
                "guard.input.allowed",
                "guard.input.blocked",
                "guard.output.allowed",
                "guard.output.blocked",
                "compliance.disclosure",
                "compliance.handoff",
                "chat.suspended",
            ],
            since=since,
        )
        return state.killswitch.status(), counts, state.log.size()

    suspensions, counts, size = await run_in_threadpool(gather)
    if suspensions:
        status = "".join(
            f'<p class="bad" id="status">SUSPENDED ({e(s["scope"])}) since {e(s["since"])}: {e(s["reason"])}</p>'
            for s in suspensions
        )
    else:
        status = f'<p class="ok" id="status">Serving {e(state.upstream.model_id)}</p>'
    token = _token_field(admin.csrf)
    switch = (
        f"""<form class="inline" method="post" action="/console/resume">{token}"""
        """<button id="resume">Resume</button></form>"""
        if suspensions
        else f"""<form class="inline" method="post" action="/console/suspend">{token}<input name="reason" id="reason"
 placeholder="reason" size="40" maxlength="2000"> <button id="suspend">Suspend everything</button></form>"""
    )
    peak = max([1] + list(counts.values()))
    bars = "".join(
        f'<g transform="translate(0,{i * 22})"><text x="0" y="14" font-size="12">{e(k)}</text>'
        f'<rect x="190" y="3" height="14" width="{int(300 * v / peak)}" '
        f'fill="{"#c33" if "blocked" in k or "handoff" in k else "#48a"}"/>'
        f'<text x="{196 + int(300 * v / peak)}" y="14" font-size="12" class="count" data-kind="{e(k)}">{v}</text></g>'
        for i, (k, v) in enumerate(counts.items())
    )
    chart = f'<svg id="guard-chart" width="560" height="{22 * len(counts)}">{bars}</svg>'
    prof = state.profile
    rows = "".join(
        f"<tr><td>{e(k)}</td><td>{e(v)}</td><td>{e(s)}</td></tr>"
        for k, v, s in prof.describe(local_upstream=state.upstream.local)
        if k.split(".")[0] in ("disclosure", "label", "watermark", "retention")
    )
    body = f"""{status}{switch}
<h2>Guard and compliance, last 24 hours</h2>{chart}
<h2>Compliance profile: {e(" + ".join(prof.names) or "none")}</h2>
<table id="profile"><tr><th>setting</th><th>value</th><th>from</th></tr>{rows}</table>
<p>Audit log: {size} entries. Statement {e(state.attestation.header)}.</p>"""
    return _page("Charter gateway", body, admin)


@router.post("/suspend")
async def suspend(
    request: Request,
    reason: str = Form("", max_length=2000),
    csrf: str = Form(""),
    state: GatewayState = Depends(get_state),
):
    admin, refused = await _post_guard(request, state, csrf)
    if refused is not None:
        return refused
    await run_in_threadpool(
        state.killswitch.suspend, ALL, reason=reason or "suspended from the console", actor=f"console:{admin.admin}"
    )
    return RedirectResponse("/console", status_code=303)


@router.post("/resume")
async def resume(request: Request, csrf: str = Form(""), state: GatewayState = Depends(get_state)):
    admin, refused = await _post_guard(request, state, csrf)
    if refused is not None:
        return refused
    await run_in_threadpool(state.killswitch.resume, ALL, actor=f"console:{admin.admin}")
    return RedirectResponse("/console", status_code=303)


@router.get("/audit")
async def audit(
    request: Request,
    tenant: str = "",
    session: str = "",
    since: str = "",
    until: str = "",
    verified: str = "",
    sig: str = "",
    state: GatewayState = Depends(get_state),
):
    admin = await _session(request, state)
    if admin is None:
        return _login_redirect()

    def read():
        return list(
            state.log.entries(
                tenant=tenant or None,
                session=session or None,
                since=since or None,
                until=until or None,
                newest_first=True,
                limit=200,
            )
        )

    rows = await run_in_threadpool(read)
    table = "".join(
        f'<tr class="entry"><td>{r.seq}</td><td>{e(r.time)}</td><td>{e(r.tenant)}</td><td>{e(r.kind)}</td>'
        f"<td>{e(r.request_id)}</td><td><pre>{e((r.body or '(purged)')[:400])}</pre></td></tr>"
        for r in rows
    )
    result = ""
    if verified and hmac.compare_digest(sig, _mac(state, "verified", admin.csrf + "\0" + verified)):
        # shown only as this session's own verification produced it, never from a crafted link
        cls = "ok" if verified.startswith("ok") else "bad"
        result = f'<p class="{cls}" id="verify-result">{e(verified)}</p>'
    body = (
        '<form method="get" action="/console/audit" id="search">\n'
        f'<input name="tenant" id="tenant" placeholder="tenant" value="{e(tenant)}"> '
        f'<input name="session" id="session" placeholder="session" value="{e(session)}">\n'
        f'<input name="since" placeholder="since (ISO)" value="{e(since)}"> '
        f'<input name="until" placeholder="until (ISO)" value="{e(until)}">\n'
        '<button id="search-button">Search</button></form>\n'
        f'<form method="post" action="/console/audit/verify">{_token_field(admin.csrf)}'
        f'<button id="verify">Verify the chain</button></form>{result}\n'
        f"<p>{len(rows)} entries (newest first, at most 200)</p>\n"
        '<table id="entries">'
        "<tr><th>seq</th><th>time</th><th>tenant</th><th>kind</th><th>request</th><th>body</th></tr>"
        f"{table}</table>"
    )
    return _page("Audit log", body, admin)


@router.post("/audit/verify")
async def verify(request: Request, csrf: str = Form(""), state: GatewayState = Depends(get_state)):
    admin, refused = await _post_guard(request, state, csrf)
    if refused is not None:
        return refused
    rep = await run_in_threadpool(state.log.verify, [state.runtime_key.public_key(), *state.log.earlier_keys])
    msg = (
        f"ok: {rep.entries} entries, {rep.checkpoints} signed checkpoints verified"
        if rep.ok
        else f"first bad entry {rep.first_bad}: {rep.problem}"
    )
    sig = _mac(state, "verified", admin.csrf + "\0" + msg)
    return RedirectResponse("/console/audit?" + urlencode({"verified": msg, "sig": sig}), status_code=303)


@router.get("/incidents")
async def incidents(request: Request, state: GatewayState = Depends(get_state)):
    admin = await _session(request, state)
    if admin is None:
        return _login_redirect()
    items = await run_in_threadpool(state.incidents.list)
    rows = "".join(
        f'<tr class="incident"><td><a href="/console/incidents/{i["id"]}">{i["id"]}</a></td><td>{e(i["status"])}</td>'
        f"<td>{e(i['opened'])}</td><td>{e(i['scope'])}</td><td>{e(i['reason'])}</td></tr>"
        for i in items
    )
    return _page(
        "Incidents",
        f'<table id="incidents"><tr><th>id</th><th>status</th><th>opened</th><th>scope</th>'
        f"<th>reason</th></tr>{rows}</table>",
        admin,
    )


@router.get("/incidents/{incident_id}")
async def incident(
    request: Request, incident_id: int = Path(ge=0, le=2**31 - 1), state: GatewayState = Depends(get_state)
):
    admin = await _session(request, state)
    if admin is None:
        return _login_redirect()
    from charter.core.errors import InputError

    try:
        rep = await run_in_threadpool(state.incidents.report, incident_id)
    except InputError as exc:
        return _page("Incident", f'<p class="bad">{e(exc)}</p>', admin)
    inc = rep["incident"]
    timeline = "".join(
        f'<tr class="event"><td>{t["seq"]}</td><td>{e(t["time"])}</td><td>{e(t["kind"])}</td>'
        f"<td>{e(t['tenant'])}</td><td>{e(t['request_id'])}</td></tr>"
        for t in rep["timeline"]
    )
    affected = "".join(f"<li>{e(rid)}: {len(es)} entries</li>" for rid, es in rep["affected_requests"].items())
    body = (
        f'<p id="reason">{e(inc["reason"])}</p>'
        f"<p>status {e(inc['status'])}, scope {e(inc['scope'])}, opened {e(inc['opened'])}</p>\n"
        '<h2>Timeline</h2><table id="timeline">'
        f"<tr><th>seq</th><th>time</th><th>kind</th><th>tenant</th><th>request</th></tr>{timeline}</table>\n"
        f'<h2>Affected requests</h2><ul id="affected">{affected}</ul>'
    )
    return _page(f"Incident {incident_id}", body, admin)

"""The web console at /console (admin key): audit-log browser with search and chain verification,
incidents and their timelines, the kill switch, the active compliance profile, guard statistics.
Plain server-rendered HTML (no front-end build); the admin logs in with an admin API key and gets
an HttpOnly, SameSite=Strict session cookie (which also stops cross-site form posts). Logins are
kept in the database (as hashes of the cookie), so every gateway process honours them."""

from __future__ import annotations

import html
import secrets
import time
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from charter.audit import db

from charter.gateway.control import ALL, iso_ago
from charter.gateway.deps import get_state
from charter.gateway.state import GatewayState
from charter.gateway.tenants import hash_key

router = APIRouter(prefix="/console", include_in_schema=False)
COOKIE = "charter_console"
TTL = 8 * 3600


def e(x) -> str:
    return html.escape("" if x is None else str(x))


def _page(title: str, body: str, admin: str | None = None) -> HTMLResponse:
    nav = ("" if admin is None else
           f'<nav><a href="/console">Overview</a> · <a href="/console/audit">Audit log</a> · '
           f'<a href="/console/incidents">Incidents</a> <span class="who">{e(admin)}</span></nav>')
    return HTMLResponse(f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)} · Charter</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;font-size:13px;vertical-align:top}}
nav{{margin-bottom:1em}}.who{{float:right;color:#666}}.bad{{color:#b00;font-weight:bold}}.ok{{color:#070;font-weight:bold}}
form.inline{{display:inline}}pre{{white-space:pre-wrap;font-size:12px;margin:0}}</style></head>
<body>{nav}<h1>{e(title)}</h1>{body}</body></html>""")


async def _admin_of(request: Request, state: GatewayState) -> str | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None

    def look():
        with state.engine.connect() as conn:
            row = conn.execute(select(db.console_sessions).where(db.console_sessions.c.token_hash == hash_key(token))).first()
        return row.tenant if row and row.expires > time.time() else None

    return await run_in_threadpool(look)


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/console/login", status_code=303)


@router.get("/login")
async def login_form(error: str | None = None):
    msg = f'<p class="bad" id="error">{e(error)}</p>' if error else ""
    return _page("Console login", f"""{msg}<form method="post" action="/console/login">
<label>Admin API key <input type="password" name="key" id="key" size="60"></label> <button id="login">Log in</button></form>""")


@router.post("/login")
async def login(key: str = Form(""), state: GatewayState = Depends(get_state)):
    tenant = await run_in_threadpool(state.tenants.lookup, key) if key else None
    if tenant is None or not tenant.admin:
        return RedirectResponse("/console/login?" + urlencode({"error": "not an admin key"}), status_code=303)
    token = secrets.token_urlsafe(32)

    def store():
        with state.engine.begin() as conn:
            conn.execute(db.console_sessions.delete().where(db.console_sessions.c.expires < time.time()))
            conn.execute(db.console_sessions.insert().values(token_hash=hash_key(token), tenant=tenant.name,
                                                             expires=time.time() + TTL))

    await run_in_threadpool(store)
    await run_in_threadpool(state.log.append, "admin.console_login", {"actor": f"tenant:{tenant.name}"})
    r = RedirectResponse("/console", status_code=303)
    r.set_cookie(COOKIE, token, max_age=TTL, httponly=True, samesite="strict")
    return r


@router.get("")
async def overview(request: Request, state: GatewayState = Depends(get_state)):
    admin = await _admin_of(request, state)
    if admin is None:
        return _login_redirect()

    def gather():
        since = iso_ago(24 * 3600)
        counts = state.log.count_by_kind(["guard.input.allowed", "guard.input.blocked", "guard.output.allowed",
                                          "guard.output.blocked", "compliance.disclosure", "compliance.handoff",
                                          "chat.suspended"], since=since)
        return state.killswitch.status(), counts, state.log.size()

    suspensions, counts, size = await run_in_threadpool(gather)
    if suspensions:
        status = "".join(f'<p class="bad" id="status">SUSPENDED ({e(s["scope"])}) since {e(s["since"])}: {e(s["reason"])}</p>'
                         for s in suspensions)
    else:
        status = f'<p class="ok" id="status">Serving {e(state.upstream.model_id)}</p>'
    switch = ("""<form class="inline" method="post" action="/console/resume"><button id="resume">Resume</button></form>"""
              if suspensions else
              """<form class="inline" method="post" action="/console/suspend"><input name="reason" id="reason"
 placeholder="reason" size="40"> <button id="suspend">Suspend everything</button></form>""")
    peak = max([1] + list(counts.values()))
    bars = "".join(f'<g transform="translate(0,{i * 22})"><text x="0" y="14" font-size="12">{e(k)}</text>'
                   f'<rect x="190" y="3" height="14" width="{int(300 * v / peak)}" fill="{"#c33" if "blocked" in k or "handoff" in k else "#48a"}"/>'
                   f'<text x="{196 + int(300 * v / peak)}" y="14" font-size="12" class="count" data-kind="{e(k)}">{v}</text></g>'
                   for i, (k, v) in enumerate(counts.items()))
    chart = f'<svg id="guard-chart" width="560" height="{22 * len(counts)}">{bars}</svg>'
    prof = state.profile
    rows = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td><td>{e(s)}</td></tr>"
                   for k, v, s in prof.describe(local_upstream=state.upstream.local)
                   if k.split(".")[0] in ("disclosure", "label", "watermark", "retention"))
    body = f"""{status}{switch}
<h2>Guard and compliance, last 24 hours</h2>{chart}
<h2>Compliance profile: {e(' + '.join(prof.names) or 'none')}</h2>
<table id="profile"><tr><th>setting</th><th>value</th><th>from</th></tr>{rows}</table>
<p>Audit log: {size} entries. Statement {e(state.attestation.header)}.</p>"""
    return _page("Charter gateway", body, admin)


@router.post("/suspend")
async def suspend(request: Request, reason: str = Form(""), state: GatewayState = Depends(get_state)):
    admin = await _admin_of(request, state)
    if admin is None:
        return _login_redirect()
    await run_in_threadpool(state.killswitch.suspend, ALL, reason=reason or "suspended from the console",
                            actor=f"console:{admin}")
    return RedirectResponse("/console", status_code=303)


@router.post("/resume")
async def resume(request: Request, state: GatewayState = Depends(get_state)):
    admin = await _admin_of(request, state)
    if admin is None:
        return _login_redirect()
    await run_in_threadpool(state.killswitch.resume, ALL, actor=f"console:{admin}")
    return RedirectResponse("/console", status_code=303)


@router.get("/audit")
async def audit(request: Request, tenant: str = "", session: str = "", since: str = "", until: str = "",
                verified: str = "", state: GatewayState = Depends(get_state)):
    admin = await _admin_of(request, state)
    if admin is None:
        return _login_redirect()

    def read():
        return list(state.log.entries(tenant=tenant or None, session=session or None, since=since or None,
                                      until=until or None, newest_first=True, limit=200))

    rows = await run_in_threadpool(read)
    table = "".join(f'<tr class="entry"><td>{r.seq}</td><td>{e(r.time)}</td><td>{e(r.tenant)}</td><td>{e(r.kind)}</td>'
                    f'<td>{e(r.request_id)}</td><td><pre>{e((r.body or "(purged)")[:400])}</pre></td></tr>' for r in rows)
    result = ""
    if verified:
        cls = "ok" if verified.startswith("ok") else "bad"
        result = f'<p class="{cls}" id="verify-result">{e(verified)}</p>'
    body = f"""<form method="get" action="/console/audit" id="search">
<input name="tenant" id="tenant" placeholder="tenant" value="{e(tenant)}"> <input name="session" id="session" placeholder="session" value="{e(session)}">
<input name="since" placeholder="since (ISO)" value="{e(since)}"> <input name="until" placeholder="until (ISO)" value="{e(until)}">
<button id="search-button">Search</button></form>
<form method="post" action="/console/audit/verify"><button id="verify">Verify the chain</button></form>{result}
<p>{len(rows)} entries (newest first, at most 200)</p>
<table id="entries"><tr><th>seq</th><th>time</th><th>tenant</th><th>kind</th><th>request</th><th>body</th></tr>{table}</table>"""
    return _page("Audit log", body, admin)


@router.post("/audit/verify")
async def verify(request: Request, state: GatewayState = Depends(get_state)):
    admin = await _admin_of(request, state)
    if admin is None:
        return _login_redirect()
    rep = await run_in_threadpool(state.log.verify, [state.runtime_key.public_key()])
    msg = (f"ok: {rep.entries} entries, {rep.checkpoints} signed checkpoints verified" if rep.ok
           else f"first bad entry {rep.first_bad}: {rep.problem}")
    return RedirectResponse("/console/audit?" + urlencode({"verified": msg}), status_code=303)


@router.get("/incidents")
async def incidents(request: Request, state: GatewayState = Depends(get_state)):
    admin = await _admin_of(request, state)
    if admin is None:
        return _login_redirect()
    items = await run_in_threadpool(state.incidents.list)
    rows = "".join(f'<tr class="incident"><td><a href="/console/incidents/{i["id"]}">{i["id"]}</a></td><td>{e(i["status"])}</td>'
                   f'<td>{e(i["opened"])}</td><td>{e(i["scope"])}</td><td>{e(i["reason"])}</td></tr>' for i in items)
    return _page("Incidents", f'<table id="incidents"><tr><th>id</th><th>status</th><th>opened</th><th>scope</th>'
                              f'<th>reason</th></tr>{rows}</table>', admin)


@router.get("/incidents/{incident_id}")
async def incident(incident_id: int, request: Request, state: GatewayState = Depends(get_state)):
    admin = await _admin_of(request, state)
    if admin is None:
        return _login_redirect()
    from charter.errors import InputError

    try:
        rep = await run_in_threadpool(state.incidents.report, incident_id)
    except InputError as exc:
        return _page("Incident", f'<p class="bad">{e(exc)}</p>', admin)
    inc = rep["incident"]
    timeline = "".join(f'<tr class="event"><td>{t["seq"]}</td><td>{e(t["time"])}</td><td>{e(t["kind"])}</td>'
                       f'<td>{e(t["tenant"])}</td><td>{e(t["request_id"])}</td></tr>' for t in rep["timeline"])
    affected = "".join(f"<li>{e(rid)}: {len(es)} entries</li>" for rid, es in rep["affected_requests"].items())
    body = f"""<p id="reason">{e(inc['reason'])}</p><p>status {e(inc['status'])}, scope {e(inc['scope'])}, opened {e(inc['opened'])}</p>
<h2>Timeline</h2><table id="timeline"><tr><th>seq</th><th>time</th><th>kind</th><th>tenant</th><th>request</th></tr>{timeline}</table>
<h2>Affected requests</h2><ul id="affected">{affected}</ul>"""
    return _page(f"Incident {incident_id}", body, admin)

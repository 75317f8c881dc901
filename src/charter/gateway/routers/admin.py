"""Admin endpoints (admin key): kill switch, incidents, audit checkpoints and verification."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from charter.gateway.control import ALL, render_report
from charter.gateway.deps import get_state, require_admin
from charter.gateway.schemas import ResumeRequest, SuspendRequest
from charter.gateway.state import GatewayState
from charter.gateway.tenants import Tenant

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/suspend")
async def suspend(body: SuspendRequest, admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    s = await run_in_threadpool(state.killswitch.suspend, body.model or ALL, reason=body.reason, actor=f"tenant:{admin.name}")
    return {"suspended": True, "scope": s.scope, "since": s.since, "reason": s.reason}


@router.post("/resume")
async def resume(body: ResumeRequest, admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    was = await run_in_threadpool(state.killswitch.resume, body.model or ALL, actor=f"tenant:{admin.name}")
    return {"suspended": False, "scope": body.model or ALL, "was_suspended": was}


@router.get("/status")
async def status(admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    return {"model": state.upstream.model_id, "suspensions": await run_in_threadpool(state.killswitch.status),
            "audit_size": await run_in_threadpool(state.log.size)}


@router.get("/incidents")
async def incidents(admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    return {"data": await run_in_threadpool(state.incidents.list)}


@router.get("/incidents/{incident_id}")
async def incident(incident_id: int, admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    from charter.errors import InputError
    from charter.gateway.errors import APIError

    try:
        rep = await run_in_threadpool(state.incidents.report, incident_id)
    except InputError as exc:
        raise APIError(404, str(exc), code="not_found") from None
    return rep | {"markdown": render_report(rep)}


@router.post("/audit/checkpoint")
async def checkpoint(admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    cp = await run_in_threadpool(state.log.checkpoint, state.runtime_key)
    return cp.to_dict() if cp else {"tree_size": 0}


@router.get("/audit/verify")
async def verify(admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    rep = await run_in_threadpool(state.log.verify, [state.runtime_key.public_key()])
    return rep.to_dict()

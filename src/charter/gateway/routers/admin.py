"""Admin endpoints (admin key): kill switch, incidents, audit checkpoints and verification."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool

from charter.gateway.control import ALL, render_report, tenant_scope
from charter.gateway.deps import get_state, require_admin
from charter.gateway.errors import APIError
from charter.gateway.schemas import ResumeRequest, SuspendRequest
from charter.gateway.state import GatewayState
from charter.gateway.tenants import Tenant, revoke_tenant

INT32_MAX = 2**31 - 1  # incident ids are 32-bit integers in the database

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def _switch_scope(body) -> str:
    if body.model and body.tenant:
        raise APIError(400, "name a model or a tenant, not both", param="tenant")
    return tenant_scope(body.tenant) if body.tenant else body.model or ALL


@router.post("/suspend")
async def suspend(
    body: SuspendRequest, admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)
):
    s = await run_in_threadpool(
        state.killswitch.suspend, _switch_scope(body), reason=body.reason, actor=f"tenant:{admin.name}"
    )
    return {"suspended": True, "scope": s.scope, "since": s.since, "reason": s.reason}


@router.post("/resume")
async def resume(body: ResumeRequest, admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    scope = _switch_scope(body)
    was = await run_in_threadpool(state.killswitch.resume, scope, actor=f"tenant:{admin.name}")
    return {"suspended": False, "scope": scope, "was_suspended": was}


@router.delete("/tenants/{name}")
async def revoke(
    name: str = Path(min_length=1, max_length=200),
    admin: Tenant = Depends(require_admin),
    state: GatewayState = Depends(get_state),
):
    """Revoke a tenant: its key stops working in this process at once (other processes on the
    database within the key cache's few seconds) and its console sessions end."""
    from charter.core.errors import InputError

    try:
        info = await run_in_threadpool(revoke_tenant, state.engine, state.log, name, actor=f"tenant:{admin.name}")
    except InputError:
        raise APIError(404, f"no tenant {name!r}", code="not_found") from None
    state.tenants.clear()
    return {"revoked": True} | info


@router.get("/status")
async def status(admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    return {
        "model": state.upstream.model_id,
        "suspensions": await run_in_threadpool(state.killswitch.status),
        "audit_size": await run_in_threadpool(state.log.size),
    }


@router.get("/incidents")
async def incidents(admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    return {"data": await run_in_threadpool(state.incidents.list)}


@router.get("/incidents/{incident_id}")
async def incident(
    incident_id: int = Path(ge=0, le=INT32_MAX),
    admin: Tenant = Depends(require_admin),
    state: GatewayState = Depends(get_state),
):
    from charter.core.errors import InputError

    try:
        rep = await run_in_threadpool(state.incidents.report, incident_id)
    except InputError:
        raise APIError(404, f"no incident {incident_id}", code="not_found") from None
    return rep | {"markdown": render_report(rep)}


@router.post("/audit/checkpoint")
async def checkpoint(admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    cp = await run_in_threadpool(state.log.checkpoint, state.runtime_key)
    return cp.to_dict() if cp else {"tree_size": 0}


@router.get("/audit/verify")
async def verify(admin: Tenant = Depends(require_admin), state: GatewayState = Depends(get_state)):
    rep = await run_in_threadpool(state.log.verify, [state.runtime_key.public_key(), *state.log.earlier_keys])
    return rep.to_dict()

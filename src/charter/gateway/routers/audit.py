"""Tenant-facing audit endpoints: a key reads only its own tenant's entries (an admin key may
name any tenant, and alone reads the gateway's own, tenant-less entries: tenant list, logins,
incidents), fetches inclusion proofs, and reports violations (which can trip the switch; each
request counts once per reporting tenant)."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, Path, Query
from starlette.concurrency import run_in_threadpool

from charter.gateway.deps import get_state, require_tenant
from charter.gateway.errors import APIError
from charter.gateway.schemas import ViolationReport
from charter.gateway.state import GatewayState
from charter.gateway.tenants import Tenant

router = APIRouter(prefix="/v1", tags=["audit"])
SEQ_MAX = 2**63 - 1  # entry numbers are 64-bit integers in the database
_reports = threading.Lock()  # check-then-append of a violation report, in this process


def _scope(tenant: Tenant, asked: str | None) -> str:
    if asked and asked != tenant.name and not tenant.admin:
        raise APIError(
            403, "a tenant key reads only its own audit entries", "permission_error", code="forbidden_tenant"
        )
    return asked or tenant.name


@router.get("/audit/entries")
async def entries(
    tenant_name: str | None = Query(None, alias="tenant", max_length=200),
    since: str | None = Query(None, max_length=40),
    until: str | None = Query(None, max_length=40),
    request_id: str | None = Query(None, max_length=100),
    limit: int = Query(100, ge=1, le=1000),
    tenant: Tenant = Depends(require_tenant),
    state: GatewayState = Depends(get_state),
):
    who = _scope(tenant, tenant_name)

    def read():
        return [
            e.to_dict() | {"data": e.data}
            for e in state.log.entries(tenant=who, since=since, until=until, request_id=request_id, limit=limit)
        ]

    return {"tenant": who, "data": await run_in_threadpool(read)}


@router.get("/audit/proof/{seq}")
async def proof(
    seq: int = Path(ge=0, le=SEQ_MAX),
    tenant: Tenant = Depends(require_tenant),
    state: GatewayState = Depends(get_state),
):
    def build():
        e = next(state.log.entries(after_seq=seq - 1, limit=1), None)
        if e is None or e.seq != seq:
            raise APIError(404, f"no audit entry {seq}", code="not_found")
        if not tenant.admin and e.tenant != tenant.name:  # another tenant's, or the gateway's own (admin only)
            raise APIError(
                403, "a tenant key reads only its own audit entries", "permission_error", code="forbidden_tenant"
            )
        cp = state.log.checkpoint(state.runtime_key, covering=seq)  # no new signature when one holds it
        return {
            "entry": e.to_dict(),
            "checkpoint": cp.to_dict(),
            "inclusion_proof": state.log.inclusion_proof(seq, cp.tree_size),
        }

    return await run_in_threadpool(build)


@router.post("/violations")
async def report_violation(
    body: ViolationReport, tenant: Tenant = Depends(require_tenant), state: GatewayState = Depends(get_state)
):
    def record():
        own = next(
            state.log.entries(request_id=body.request_id, tenant=None if tenant.admin else tenant.name, limit=1), None
        )
        if own is None:
            raise APIError(404, f"no request {body.request_id} of this tenant", param="request_id", code="not_found")
        with _reports:
            # One report per request and tenant; a repeat is acknowledged, not logged or counted
            # (trip rules also count distinct (tenant, request) pairs, across processes).
            first = next(
                state.log.entries(request_id=body.request_id, tenant=tenant.name, kinds=["violation.report"], limit=1),
                None,
            )
            if first is not None:
                return {"recorded": False, "duplicate": True, "seq": first.seq, "incident_id": None}
            e = state.log.append(
                "violation.report",
                {"description": body.description, "reporter": tenant.name},
                tenant=tenant.name,
                request_id=body.request_id,
            )
        incident = state.tripwire.observe("violation.report", state.upstream.model_id, tenant.name)
        return {"recorded": True, "duplicate": False, "seq": e.seq, "incident_id": incident}

    return await run_in_threadpool(record)

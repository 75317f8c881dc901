"""GET /v1/attestation (which sealed model, which constitution, which runtime key), /metrics and
/healthz. Public: a client verifies the gateway before sending it anything."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from charter.gateway.deps import get_state
from charter.gateway.state import GatewayState

router = APIRouter(tags=["attestation"])


@router.get("/v1/attestation")
async def attestation(state: GatewayState = Depends(get_state)):
    a = state.attestation
    return {"model": state.upstream.model_id, "sealed": a.sealed, "verified_at_start": a.verified,
            "statement_digest": a.statement_digest, "root_digest": a.root_digest,
            "statement_envelope": a.statement_envelope, "constitution": a.constitution,
            "guard": ({"digest": state.guard.spec.get("digest"), "format": state.guard.spec.get("format")}
                      if state.guard is not None else None),
            "runtime_public_key": state.runtime_public_pem, "runtime_key_id": state.runtime_key_id,
            "receipts": state.config.server.receipts}


@router.get("/metrics", include_in_schema=False)
async def metrics(state: GatewayState = Depends(get_state)):
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz(state: GatewayState = Depends(get_state)):
    s = state.killswitch.suspended(state.upstream.model_id)
    return {"ok": True, "suspended": bool(s)}

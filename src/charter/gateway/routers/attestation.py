"""GET /v1/attestation (which sealed model, which constitution, which runtime key), /metrics and
/healthz. Public: a client verifies the gateway before sending it anything. The statement digest is
named only when the seal was verified at start; otherwise ``seal`` says ``unverified`` or ``unsealed``."""

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
    # statement_digest/root_digest only for a seal verified at start (require_seal); a seal nobody
    # verified is shown apart, under "unverified", marked verified: false.
    unverified = (
        {
            "verified": False,
            "statement_digest": a.unverified_statement_digest,
            "root_digest": a.unverified_root_digest,
            "statement_envelope": a.statement_envelope,
            "note": "a charter-seal/ sits beside the weights but the gateway did not verify it "
            "(no require_seal): anyone who can write there could have put it there",
        }
        if a.sealed and not a.verified
        else None
    )
    return {
        "model": state.upstream.model_id,
        "sealed": a.sealed,
        "verified_at_start": a.verified,
        "seal": a.status,
        "statement_digest": a.statement_digest,
        "root_digest": a.root_digest,
        "statement_envelope": a.statement_envelope if a.verified else None,
        "unverified": unverified,
        "constitution": a.constitution,
        "guard": (
            {"digest": state.guard.spec.get("digest"), "format": state.guard.spec.get("format")}
            if state.guard is not None
            else None
        ),
        "runtime_public_key": state.runtime_public_pem,
        "runtime_key_id": state.runtime_key_id,
        "receipts": state.config.server.receipts,
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(state: GatewayState = Depends(get_state)):
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz(state: GatewayState = Depends(get_state)):
    s = state.killswitch.suspended(state.upstream.model_id)
    return {"ok": True, "suspended": bool(s)}

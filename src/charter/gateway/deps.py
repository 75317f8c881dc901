"""FastAPI dependencies: the process state, the calling tenant (API key → tenant, rate limit)
and the admin check."""

from __future__ import annotations

import math

from fastapi import Depends, Request

from charter.gateway.errors import APIError
from charter.gateway.state import GatewayState
from charter.gateway.tenants import Tenant


async def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key")


async def require_tenant(request: Request, state: GatewayState = Depends(get_state)) -> Tenant:
    key = _bearer(request)
    if not key:
        raise APIError(401, "missing API key: send Authorization: Bearer <key>", code="invalid_api_key")
    tenant = state.tenants.lookup(key)
    if tenant is None:
        raise APIError(401, "invalid API key", code="invalid_api_key")
    held = state.killswitch.tenant_suspended(tenant.name)  # cached state: no database access
    if held is not None:
        raise APIError(
            403, f"this tenant's access is suspended: {held.reason}", "permission_error", code="tenant_suspended"
        )
    ok, wait = state.ratelimiter.allow(tenant)
    if not ok:
        raise APIError(
            429,
            f"rate limit of {tenant.rate_limit_rpm} requests per minute exceeded",
            "rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    request.state.tenant = tenant.name
    return tenant


async def require_admin(tenant: Tenant = Depends(require_tenant)) -> Tenant:
    if not tenant.admin:
        raise APIError(403, "this endpoint needs an admin key", "permission_error", code="admin_required")
    return tenant

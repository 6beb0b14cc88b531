"""Bearer API-key authentication, and the tenant's per-minute limits, as FastAPI dependencies."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from inference_core.domain.limits import RateState
from inference_core.errors import AuthenticationError
from inference_core.logic import auth, limits

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")
RATE_STATE = "rate_limits"  # where a request's RateState is kept for the x-ratelimit-* headers of its reply


def authenticated(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    return auth.authenticate(credentials.credentials)


def admit(request: Request, tenant_id: str, inputs: int = 0) -> RateState:
    """Count the request (and its inputs) against the tenant's minute; RateLimitedError (429) when over."""
    state = limits.admit(tenant_id, inputs)
    request.scope.setdefault("state", {})[RATE_STATE] = state
    return state


async def admit_async(request: Request, tenant_id: str, inputs: int = 0) -> RateState:
    return await asyncio.to_thread(admit, request, tenant_id, inputs)


def tenant_id(request: Request, tenant: Annotated[str, Depends(authenticated)]) -> str:
    """The caller's tenant, its request counted (routes that carry inputs count them with `admit` instead)."""
    admit(request, tenant)
    return tenant


Tenant = Annotated[str, Depends(tenant_id)]
# A route that counts its request itself, once it knows how many inputs it carries (one write, not two).
CountingTenant = Annotated[str, Depends(authenticated)]

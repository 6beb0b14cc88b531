"""Bearer API-key authentication as a FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from inference_core.errors import AuthenticationError
from inference_core.logic import auth

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")


def tenant_id(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    return auth.authenticate(credentials.credentials)


Tenant = Annotated[str, Depends(tenant_id)]

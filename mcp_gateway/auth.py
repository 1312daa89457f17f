"""HTTP authentication in front of the MCP endpoint: every request gets a principal or a 401.

Pure ASGI so it also guards streamed responses. The principal is put on `scope["state"]`, where the
policy middleware reads it through the SDK's Starlette request. The client's credentials stop here:
upstream connections use the gateway's own.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from meshgate.errors import Unauthenticated
from meshgate.identity import Authenticator

logger = logging.getLogger(__name__)


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, authenticator: Authenticator, protected_prefix: str) -> None:
        self._app = app
        self._authenticator = authenticator
        self._prefix = protected_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self._prefix):
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            principal = self._authenticator.authenticate(headers.get("authorization"), headers.get("x-api-key"))
        except Unauthenticated as exc:
            logger.info("rejected unauthenticated request from %s: %s", scope.get("client"), exc.detail)
            await _unauthorized(send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self._app(scope, receive, send)


async def _unauthorized(send: Send, exc: Unauthenticated) -> None:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32036, "message": exc.detail, "data": {"code": exc.code}}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="meshgate"'),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

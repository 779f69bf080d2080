"""``UnchangedPolls``: pure ASGI middleware answering a gateway's snapshot or spend poll with a 304 before routing,
when nothing changed: the answer most polls get, every few seconds from every gateway.

It answers only a request the routes (``interlock.api.routes.gateway``) would answer with the same 304: a ``GET``
of ``/v1/gateway/snapshot`` or ``/v1/gateway/spend``, with only the routes' query parameters, each once and valid
by the routes' own bounds; one ``Authorization: Bearer`` gateway credential that verifies under the signing key
(``GatewayCredentials``) and whose scope holds ``gateway_id``; one ``If-None-Match`` that matches the version the
``ConfigWatch`` holds in memory. Anything else (no watch, a bad parameter or credential, a changed version) goes on
to the routes, which answer it as they always have: the checks here only decide whether the shortcut applies. No
dependency injection, no database session, no response object: the ETag compare and two header lines.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from interlock.api.configwatch import ConfigWatch
from interlock.api.crud.snapshot import spend_version_of
from interlock.api.deps import GatewayCredentials
from interlock.api.settings import ApiSettings
from interlock.contract.controlplane import GATEWAY_SNAPSHOT_PATH, GATEWAY_SPEND_PATH
from interlock.contract.gatewaycred import gateway_id_in_scope

__all__ = ["UnchangedPolls", "etag_matches"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_GATEWAY_ID = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
"""The routes' ``GatewayIdQuery``."""
_SINCE = re.compile(r"[0-9]{1,19}")
_SINCE_MAX = 2**62
_PARAMS = {GATEWAY_SNAPSHOT_PATH: frozenset({"gateway_id", "since"}), GATEWAY_SPEND_PATH: frozenset({"gateway_id"})}
_IF_NONE_MATCH_MAX = 4096


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or any listed tag equal under weak comparison."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


class UnchangedPolls:
    def __init__(self, app: ASGIApp, settings: ApiSettings, watch: ConfigWatch, credentials: GatewayCredentials):
        self.app = app
        self.signing_key = settings.signing_key()
        self.watch = watch
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in _PARAMS:
            etag = self._unchanged(scope)
            if etag is not None:
                headers = [(b"etag", etag.encode("latin-1")), (b"cache-control", b"no-cache")]
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

    def _unchanged(self, scope: Scope) -> str | None:
        """The ETag of the 304 the routes would answer this request with; None when they might answer otherwise."""
        if self.signing_key is None:
            return None
        path: str = scope["path"]
        params = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        names = [name for name, _ in params]
        if len(set(names)) != len(names) or not set(names) <= _PARAMS[path]:
            return None
        query = dict(params)
        gateway_id = query.get("gateway_id")
        if gateway_id is None or not _GATEWAY_ID.fullmatch(gateway_id):
            return None
        since = query.get("since")
        if since is not None and not (_SINCE.fullmatch(since) and int(since) <= _SINCE_MAX):
            return None
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    return None
                authorization = value.decode("latin-1")
            elif name == b"if-none-match":
                if if_none_match is not None:
                    return None
                if_none_match = value.decode("latin-1")
        if authorization is None or if_none_match is None or len(if_none_match) > _IF_NONE_MATCH_MAX:
            return None
        scheme, _, credential = authorization.partition(" ")  # as fastapi's HTTPBearer reads it
        if scheme.lower() != "bearer" or not credential:
            return None
        credential_scope = self.credentials.scope(self.signing_key, credential)
        if credential_scope is None or not gateway_id_in_scope(credential_scope, gateway_id):
            return None
        if path == GATEWAY_SNAPSHOT_PATH:
            version = self.watch.config_version()
            if version is None:
                return None
            etag = f'"{version}"'
        else:
            cursors = self.watch.cursors()
            if cursors is None:
                return None
            etag = f'"{spend_version_of(cursors, gateway_id, dt.datetime.now(dt.UTC))}"'
        return etag if etag_matches(if_none_match, etag) else None

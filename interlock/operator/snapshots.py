"""The last key snapshot of each gateway, kept where a new gateway pod can read it: a Secret the pods mount.

A gateway pod keeps the control plane's key snapshot in its spool, on an emptyDir: a pod that starts while the
control plane is down (a rollout, a rescheduled pod) would have none and could not authenticate anyone. So the
operator, which can mint any gateway's credential, fetches the snapshot for each gateway it runs (as gateway id
``<namespace>/<gateway>/interlock-operator``, which never sends usage) at most every ``snapshot_refresh_s``, with
``If-None-Match``, and keeps it in the Secret ``<gateway>-snapshot`` (key ``snapshot.json``) in the gateway's
namespace, owned by its Routes like every child. The Secret is written only when the snapshot's version changed.
Gateway pods mount it and start from it (``INTERLOCK_GATEWAY_SNAPSHOT_SEED_FILE``) when their spool has none; the
control plane's own answers replace it as soon as it is reachable.

The snapshot holds key hashes, tenants, quotas and spend: what the gateway's credential can read anyway, stored
next to that credential. A Secret holds at most 1 MiB (about 4,000 keys); a larger snapshot is not mirrored (a
warning says so) and new pods then wait for the control plane as before.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import ValidationError

from interlock.contract.controlplane import GATEWAY_SNAPSHOT_PATH, Snapshot
from interlock.contract.gatewaycred import mint_gateway_credential
from interlock.operator.builders import snapshot_secret
from interlock.operator.naming import ANNOTATION_SNAPSHOT_VERSION, USER_AGENT, snapshot_secret_name

__all__ = ["MAX_SNAPSHOT_BYTES", "SnapshotMirror"]

log = logging.getLogger("interlock.operator.snapshots")

MAX_SNAPSHOT_BYTES = 900 * 1024  # a Secret holds 1 MiB, base64 and metadata included


class SnapshotMirror:
    """Fetches gateways' snapshots and keeps them in their Secrets (see the module docstring)."""

    def __init__(self, *, timeout_s: float = 5.0) -> None:
        self._http = httpx.AsyncClient(timeout=timeout_s, trust_env=False, headers={"user-agent": USER_AGENT})
        self._fetched: dict[Any, float] = {}
        self._etags: dict[Any, str] = {}

    async def close(self) -> None:
        await self._http.aclose()

    async def _fetch(self, url: str, token: str, gateway_id: str, etag: str | None) -> tuple[int, bytes, str]:
        headers = {"authorization": f"Bearer {token}", **({"if-none-match": etag} if etag else {})}
        async with self._http.stream(
            "GET", url.rstrip("/") + GATEWAY_SNAPSHOT_PATH, params={"gateway_id": gateway_id}, headers=headers
        ) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_SNAPSHOT_BYTES:
                    raise ValueError(f"the snapshot is larger than {MAX_SNAPSHOT_BYTES} bytes: not mirrored")
            return response.status_code, body, response.headers.get("etag", "")

    async def refresh(self, ctx: Any, key: Any, owners: list[Mapping[str, Any]]) -> None:
        """Mirror gateway ``key``'s snapshot if it is due; never raises (the gateway run goes on)."""
        from interlock.operator.reconcile import owned_by  # the reconcile module imports this one

        settings = ctx.settings
        if not settings.control_plane_url or settings.gateway_signing_key is None:
            return
        now = time.monotonic()
        if now - self._fetched.get(key, -math.inf) < settings.snapshot_refresh_s:
            return
        self._fetched[key] = now
        namespace, gateway = key
        scope = f"{namespace}/{gateway}"
        token = mint_gateway_credential(settings.gateway_signing_key.get_secret_value().encode(), scope)
        try:
            status, body, etag = await self._fetch(
                settings.control_plane_url, token, f"{scope}/interlock-operator", self._etags.get(key)
            )
            if status == 304:
                return
            if status != 200:
                raise ValueError(f"HTTP {status}: {body[:200].decode(errors='replace')}")
            version = Snapshot.model_validate_json(body).version
            live = await ctx.kube.get("v1", "Secret", namespace, snapshot_secret_name(gateway))
            have = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SNAPSHOT_VERSION)
            if have != version:
                manifest = snapshot_secret(namespace, gateway, body, version)
                for owner in owners:
                    owned_by(manifest, owner, controller=False)
                await ctx.kube.apply(manifest, live=live)
            self._etags[key] = etag
        except (httpx.HTTPError, ValueError, ValidationError) as exc:
            log.warning("gateway %s: snapshot not mirrored: %s", scope, exc)

"""The HTTP client the gateway reaches its control plane with (snapshot polls, usage batches), and the gateway's
User-Agent, which upstream requests carry too."""

from __future__ import annotations

import httpx

__all__ = ["USER_AGENT", "control_plane_client"]

USER_AGENT = "interlock-gateway/0.1"


def control_plane_client(
    url: str,
    token: str | None,
    *,
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """A client for ``url`` that presents the gateway token (when there is one) on every request."""
    all_headers = {"user-agent": USER_AGENT, **(headers or {})}
    if token:
        all_headers["authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(base_url=url.rstrip("/"), headers=all_headers, timeout=timeout_s, transport=transport)

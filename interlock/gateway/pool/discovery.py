"""Endpoint discovery by DNS: a headless Service's name resolves to one address per ready pod.

``Resolver`` is the seam: host -> (address, port or None) pairs. The default asks the system resolver
(``getaddrinfo``, off the loop's thread) for A/AAAA records, whose port is the config's; a resolver that reads
SRV records, or a test's or ``bench/routing``'s own table, may give each address its port. It runs in the pool's
background task, never on a request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

__all__ = ["Resolver", "endpoint_urls", "system_resolver"]

Resolver = Callable[[str], Awaitable[list[tuple[str, int | None]]]]
"""host -> its (address, port or None) pairs, an empty list when it has none; raises ``OSError`` on failure."""


async def system_resolver(host: str) -> list[tuple[str, int | None]]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return []  # the name exists but has no ready pod, or does not exist yet
        raise
    return [(address, None) for address in sorted({str(info[4][0]) for info in infos})]


def endpoint_urls(addresses: Iterable[tuple[str, int | None]], template: str, port: int | None) -> list[str]:
    """Each address as a base URL with ``template``'s scheme and path, on its own port, else ``port``, else the
    template's. An address that is not an IP address is refused (``ValueError``): DNS answers carry IPs."""
    url = urlsplit(template)
    default = port or url.port or (443 if url.scheme == "https" else 80)
    urls = []
    for address, own_port in addresses:
        host = f"[{address}]" if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address) else address
        urls.append(f"{url.scheme}://{host}:{own_port or default}{url.path}")
    return sorted(urls)

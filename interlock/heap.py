"""A server process's startup heap, kept out of its later garbage collections.

A started gateway holds about 53,000 objects the collector tracks (modules, classes, functions, the compiled
config, the tokenizer's tables) that live as long as the process. CPython's oldest-generation collection walks
every one of them each time it runs, a pause of every stream the process serves (20-50 ms on this project's
machine; bench/RESULTS.md, "the gateway's full garbage collections").
``gc.freeze()`` moves what is alive once startup is done into a permanent generation the collector skips;
refcounting still frees those objects. The cost: a reference cycle among them that becomes garbage later (a
replaced config, for one) is never collected, a bounded leak of what startup built, once per process.

Only a server's own process calls it (``interlock gateway`` and ``interlock api`` through ``FrozenStartupServer``,
``interlock up`` once it has started everything), never an app embedded in another program, whose heap is not the
app's to freeze.
"""

from __future__ import annotations

import gc
import logging
import socket

import uvicorn

__all__ = ["FrozenStartupServer", "freeze_startup_heap"]

log = logging.getLogger("interlock")


def freeze_startup_heap() -> int:
    """Collect what startup left as garbage, then freeze the rest; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class FrozenStartupServer(uvicorn.Server):
    """uvicorn's server, which freezes the process's startup heap once its lifespan has started the app and it
    listens, before its first request."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            log.debug("startup heap frozen: %d objects", freeze_startup_heap())

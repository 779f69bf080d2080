"""``SchemaWorkers``: the gateway's side of the schema worker processes (``worker.py``).

Every schema check and every validation of an answer runs in a worker, never on the event loop: a tenant's schema
costs the loop one pipe write and one read, however pathological it is. Each job has a budget of CPU time
(``structured_budget_s``): the worker stops the job itself when it is spent and answers "over budget" (the job fails
with ``SchemaBudgetExceeded``, and a schema whose check overran is remembered as refused); a worker that does not
answer within a generous wall-clock cap (``_wall_cap``) is killed and a fresh one takes its place, and that failure
is not remembered against the schema (the machine was busy, or the worker stuck). Workers start on first use and
stay; at most ``workers`` run jobs at once, and further jobs wait for one. One owner (a tenant) never holds more
than ``workers - 1`` of them (when there are two or more), so a tenant sending pathological schemas cannot keep the
others' structured output waiting. The verdict of a schema check (usable, refused, or over the budget) is remembered
per schema, so a schema sent again costs no round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import subprocess
import sys
from collections import OrderedDict, deque
from collections.abc import Callable

from interlock.gateway.structured.worker import (
    CHECK,
    FAILED,
    INVALID_DOCUMENT,
    INVALID_SCHEMA,
    JOB,
    OK,
    OVER_BUDGET,
    READY,
    REPLY,
    VALIDATE,
)

__all__ = ["SchemaBudgetExceeded", "SchemaWorkers"]

log = logging.getLogger("interlock.gateway.structured")

_START_TIMEOUT_S = 30.0
_REMEMBERED = 1024
_OVER_BUDGET = "\0over budget"  # the remembered verdict of a schema whose check overran the budget
_GRACE_S = 5.0  # wall-clock seconds a worker may take beyond its job's CPU budget, at least, before it is killed
_STARVED_FACTOR = 10.0  # ... or this many times the budget: a SCHED_IDLE worker on a busy machine runs slowly


def _wall_cap(budget_s: float) -> float:
    return max(budget_s + _GRACE_S, budget_s * _STARVED_FACTOR)


class SchemaBudgetExceeded(Exception):
    """A schema job did not finish within its budget (or its worker died, or did not answer in time)."""

    def __init__(self, reason: str, *, verdict: bool = True) -> None:
        super().__init__(reason)
        self.verdict = verdict
        """Whether it says something about the schema (it spent its CPU budget), rather than about the worker."""


class _Worker:
    """One worker process and the event loop's ends of its pipes.

    The process is started by ``subprocess.Popen`` in a thread (CPython uses ``vfork`` there, so the event loop
    waits at most for the exec) rather than by the loop's own spawn, which forks the whole gateway process on the
    loop's thread: a replacement for a killed worker must not stall every other request.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        reader: asyncio.StreamReader,
        pipes: tuple[asyncio.ReadTransport, asyncio.WriteTransport],
    ) -> None:
        self.process = process
        self.reader = reader
        self.pipes = pipes
        self.alive = True
        self.reaped: asyncio.Task[None] | None = None
        """Closing the pipes and waiting for the exit, once killed."""

    @classmethod
    async def start(cls) -> _Worker:
        argv = [sys.executable, "-m", "interlock.gateway.structured.worker"]
        process = await asyncio.to_thread(subprocess.Popen, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert process.stdin is not None
        assert process.stdout is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transports: list[asyncio.BaseTransport] = []
        try:
            incoming, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
            transports.append(incoming)
            outgoing, _ = await loop.connect_write_pipe(asyncio.Protocol, process.stdin)
            transports.append(outgoing)
            if await reader.readexactly(len(READY)) != READY:  # its imports are done: jobs are timed from here
                raise OSError("the schema worker did not say it was ready")
        except BaseException:
            process.kill()
            for transport in transports:  # a transport owns its pipe from here on: it closes it
                transport.close()
            for end in (process.stdin, process.stdout)[: 2 - len(transports)]:
                end.close()
            await asyncio.to_thread(process.wait)
            raise
        return cls(process, reader, (incoming, outgoing))

    async def run(self, op: int, schema: bytes, document: bytes, budget_s: float) -> tuple[int, str]:
        try:
            async with asyncio.timeout(_wall_cap(budget_s)):
                # One job at a time, and the worker reads it at once: the transport buffers what the pipe cannot
                # take yet (at most the schema and answer size limits).
                head = JOB.pack(op, round(budget_s * 1000), len(schema), len(document))
                self.pipes[1].write(head + schema + document)
                status, size = REPLY.unpack(await self.reader.readexactly(REPLY.size))
                text = (await self.reader.readexactly(size)).decode() if size else ""
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            self.kill()
            if isinstance(exc, TimeoutError):
                log.warning("a schema worker gave no answer within %gs: killed, replaced", _wall_cap(budget_s))
            reason = "no answer in time" if isinstance(exc, TimeoutError) else "the worker died"
            raise SchemaBudgetExceeded(reason, verdict=False) from None
        except BaseException:  # cancelled mid-job (the client left): its answer would confuse the next job
            self.kill()
            raise
        if status == OVER_BUDGET:
            raise SchemaBudgetExceeded(text)
        return status, text

    @property
    def exited(self) -> bool:
        return self.process.poll() is not None

    def kill(self) -> None:
        """Stop the process now; its transports are closed and its exit awaited in the background (``reaped``)."""
        if self.reaped is not None:
            return
        self.alive = False
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        for pipe in self.pipes:
            pipe.close()
        self.reaped = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        # The pipe transports own the pipes' file objects and close them (the loop closes the descriptors when
        # the transports are done): closing them here too would race that and could close a descriptor number
        # that has since been reused (a new worker's pipe, a client socket).
        await asyncio.to_thread(self.process.wait)


class _Share:
    """One owner's share of the workers: how many jobs it may run at once, and how many it has running or
    waiting."""

    __slots__ = ("semaphore", "users")

    def __init__(self, jobs: int) -> None:
        self.semaphore = asyncio.Semaphore(jobs)
        self.users = 0


class SchemaWorkers:
    def __init__(self, *, workers: int = 2, budget_s: float = 2.0, on_trip: Callable[[str], None] | None = None):
        self.size = workers
        self.budget_s = budget_s
        self._on_trip = on_trip
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._waiters: deque[asyncio.Future[_Worker | None]] = deque()
        self._checked: OrderedDict[bytes, str | None] = OrderedDict()
        self._owners: dict[str, _Share] = {}
        self._dead: set[_Worker] = set()
        self._starting = 0
        self.started = 0
        """Worker processes started so far (a killed worker's replacement counts)."""

    @property
    def busy(self) -> int:
        """Workers running a job now (started, and not idle)."""
        return len(self._all) - len(self._idle)

    def trip(self, limit: str) -> None:
        if self._on_trip is not None:
            self._on_trip(limit)

    # --- jobs ---------------------------------------------------------------------------------------------

    async def check(self, schema: bytes, owner: str = "") -> str | None:
        """Why ``schema`` (JSON) cannot be used, or None. ``SchemaBudgetExceeded`` past the budget."""
        key = hashlib.blake2b(schema, digest_size=16).digest()
        if key in self._checked:
            self._checked.move_to_end(key)
            known = self._checked[key]
            if known == _OVER_BUDGET:
                self.trip("schema_budget")
                raise SchemaBudgetExceeded("this schema overran the budget before")
            return known
        try:
            status, text = await self._job(CHECK, schema, b"", owner)
        except SchemaBudgetExceeded as exc:
            if exc.verdict:
                self._remember(key, _OVER_BUDGET)
            raise
        problem = text if status == INVALID_SCHEMA else None
        if status == FAILED:
            problem = f"the schema could not be checked: {text}"
        self._remember(key, problem)
        return problem

    def _remember(self, key: bytes, verdict: str | None) -> None:
        self._checked[key] = verdict
        if len(self._checked) > _REMEMBERED:
            self._checked.popitem(last=False)

    async def validate(self, schema: bytes, document: bytes, owner: str = "") -> str | None:
        """Why ``document`` (JSON text) does not satisfy ``schema``, or None when it does."""
        status, text = await self._job(VALIDATE, schema, document, owner)
        if status == OK:
            return None
        if status == INVALID_DOCUMENT:
            return text
        return f"the answer could not be validated: {text}"

    async def _job(self, op: int, schema: bytes, document: bytes, owner: str) -> tuple[int, str]:
        share = self._owners.get(owner)
        if share is None:
            share = self._owners[owner] = _Share(max(1, self.size - 1))
        share.users += 1
        try:
            async with share.semaphore:
                worker = await self._acquire()
                try:
                    return await worker.run(op, schema, document, self.budget_s)
                except SchemaBudgetExceeded:
                    self.trip("schema_budget")
                    raise
                finally:
                    self._release(worker)
        finally:
            share.users -= 1
            if not share.users:
                del self._owners[owner]

    # --- workers ------------------------------------------------------------------------------------------

    async def _acquire(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive and not worker.exited:
                return worker
            worker.kill()  # it died idle (out of memory, killed by someone): close its pipes
            self._retire(worker)
        if len(self._all) + self._starting < self.size:
            return await self._start()
        waiter: asyncio.Future[_Worker | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            handed = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                late = waiter.result()
                if late is not None:
                    self._release(late)  # handed over just as this request was cancelled
            raise
        return handed if handed is not None else await self._start()

    def _retire(self, worker: _Worker) -> None:
        self._all.discard(worker)
        self._dead.add(worker)
        if worker.reaped is not None:
            worker.reaped.add_done_callback(lambda _: self._dead.discard(worker))

    def _release(self, worker: _Worker) -> None:
        if not worker.alive:
            self._retire(worker)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker if worker.alive else None)  # None: the waiter starts a fresh one
                return
        if worker.alive:
            self._idle.append(worker)

    async def _start(self) -> _Worker:
        self._starting += 1
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                worker = await _Worker.start()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise SchemaBudgetExceeded(f"no schema worker could start: {exc!r}", verdict=False) from None
        finally:
            self._starting -= 1
        self._all.add(worker)
        self.started += 1
        return worker

    async def close(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        workers, self._all, self._idle = [*self._all, *self._dead], set(), []
        for worker in workers:
            worker.kill()
        await asyncio.gather(*(w.reaped for w in workers if w.reaped is not None), return_exceptions=True)

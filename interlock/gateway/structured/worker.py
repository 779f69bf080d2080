"""The schema worker process: ``python -m interlock.gateway.structured.worker``.

It checks and applies tenants' JSON Schemas (``engine.py``) away from the gateway's event loop, one job at a time,
scheduled ``SCHED_IDLE`` (only on CPU nothing else wants), with an address-space cap. Each job carries its time
budget in CPU time: a ``SIGPROF`` timer (``ITIMER_PROF``: this process's user and system time) interrupts the
job's Python code when the budget is spent (jsonschema is pure Python, RE2 and orjson are linear in their input),
and the worker answers "over budget" and takes the next job, so an overrun costs no new process. CPU time, not
wall time: a worker that the scheduler starves on a busy machine (it runs ``SCHED_IDLE``) is slow, not over
budget, and a usable schema is never refused for the machine's load. The gateway (``pool.py``) kills the worker
only if no answer comes long after the budget (stuck in C code, or starved for far too long), and starts another.

Once its imports are done the worker writes one byte, ``READY``, so the gateway counts no job's time against the
start of a cold process.

Wire format on stdin/stdout, big-endian: a job is ``op (1 byte) | budget in ms (4) | len(schema) (4) |
len(document) (4) | schema | document``, with op 1 (check the schema) or 2 (validate the document, JSON text,
against it); the answer is ``status (1) | len(text) (4) | text``, with status 0 (fine), 1 (the document does not
validate: text says why), 2 (the schema is refused: text says why), 3 (the job failed: text says why) or 4 (the
job ran over its budget).
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import struct
import sys
from collections import OrderedDict
from types import FrameType
from typing import Any, BinaryIO

__all__ = [
    "CHECK",
    "FAILED",
    "INVALID_DOCUMENT",
    "INVALID_SCHEMA",
    "JOB",
    "OK",
    "OVER_BUDGET",
    "READY",
    "REPLY",
    "VALIDATE",
    "main",
]

CHECK, VALIDATE = 1, 2
OK, INVALID_DOCUMENT, INVALID_SCHEMA, FAILED, OVER_BUDGET = 0, 1, 2, 3, 4
JOB = struct.Struct(">BIII")
REPLY = struct.Struct(">BI")
READY = b"R"
_NICENESS = 19
_MAX_ADDRESS_SPACE = 2 << 30
_CACHED = 256


class _Overrun(BaseException):
    """The job's budget is spent (a BaseException, so that no library's ``except Exception`` swallows it)."""


def _overrun(signum: int, frame: FrameType | None) -> None:
    raise _Overrun


def _step_aside() -> None:
    """Run only on CPU the gateway leaves: SCHED_IDLE where Linux allows it, else the lowest nice level."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(_NICENESS)


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def main() -> int:
    _step_aside()
    from interlock.gateway.structured.engine import InvalidSchema, compile_schema, document_problem

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > _MAX_ADDRESS_SPACE:
        cap = _MAX_ADDRESS_SPACE if hard == resource.RLIM_INFINITY else min(_MAX_ADDRESS_SPACE, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    signal.signal(signal.SIGPROF, _overrun)
    jobs, answers = sys.stdin.buffer, sys.stdout.buffer
    answers.write(READY)
    answers.flush()
    validators: OrderedDict[bytes, Any] = OrderedDict()

    def job(op: int, schema: bytes, document: bytes) -> tuple[int, str]:
        try:
            key = hashlib.blake2b(schema, digest_size=16).digest()
            validator = validators.get(key)
            if validator is None:
                validator = validators[key] = compile_schema(schema)
                if len(validators) > _CACHED:
                    validators.popitem(last=False)
            else:
                validators.move_to_end(key)
            if op == VALIDATE:
                problem = document_problem(validator, document)
                if problem is not None:
                    return INVALID_DOCUMENT, problem
            return OK, ""
        except InvalidSchema as exc:
            return INVALID_SCHEMA, str(exc)
        except MemoryError:
            return FAILED, "the job ran out of memory"
        except Exception as exc:  # a bug or a surprise in a library: the gateway says so, never hangs
            return FAILED, f"{type(exc).__name__}: {exc}"[:300]

    while True:
        head = _read(jobs, JOB.size)
        if head is None:
            return 0
        op, budget_ms, schema_size, document_size = JOB.unpack(head)
        schema, document = _read(jobs, schema_size), _read(jobs, document_size)
        if schema is None or document is None:
            return 0
        try:
            signal.setitimer(signal.ITIMER_PROF, budget_ms / 1000)
            try:
                status, text = job(op, schema, document)
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
        except _Overrun:
            status, text = OVER_BUDGET, f"over the budget of {budget_ms / 1000:g}s of CPU time"
        encoded = text.encode()
        answers.write(REPLY.pack(status, len(encoded)) + encoded)
        answers.flush()


if __name__ == "__main__":
    sys.exit(main())

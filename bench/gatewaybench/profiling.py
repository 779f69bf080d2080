"""Sample a process with py-spy while it is under load, and say where its time goes."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gatewaybench.procs import cpu_seconds

__all__ = ["Load", "Profile", "profile_summary_markdown", "profile_under_load", "record", "summarise"]

_LINE_NO = re.compile(r":\d+\)$")
_SITE = re.compile(r"^.*/(?:site-packages|lib/python3\.\d+)/")


@dataclass(frozen=True)
class Profile:
    samples: int  # samples of the event-loop thread (what the tables are fractions of)
    other_threads: list[tuple[str, int]]  # leaf frames of the other threads' samples
    self_frames: list[tuple[str, int]]
    inclusive_frames: list[tuple[str, int]]
    self_modules: list[tuple[str, int]]
    self_layers: list[tuple[str, int]]


def py_spy() -> str | None:
    """py-spy next to this interpreter (the project venv), or on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, out: Path, *, duration_s: int, rate: int = 100, cores: str = "1") -> subprocess.Popen[bytes]:
    """Start ``py-spy record -f raw`` on ``pid`` in the background (pinned to ``cores``); wait on the result."""
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed")
    argv = [
        "taskset", "-c", cores, binary, "record", "-p", str(pid), "-d", str(duration_s), "-r", str(rate),
        "-f", "raw", "-o", str(out),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame(raw: str) -> str:
    """``func (path/to/mod.py:12)`` -> ``func (path/to/mod.py)``, with site-packages and stdlib prefixes dropped."""
    name, _, where = raw.partition(" (")
    where = _SITE.sub("", _LINE_NO.sub(")", "(" + where))[1:-1] if where else ""
    return f"{name} ({where})" if where else name


def _module(frame: str) -> str:
    """The file part of a frame: ``interlock/gateway/relay.py``, ``httpx/_client.py``, ``asyncio/events.py``."""
    return frame.rpartition(" (")[2].rstrip(")") or frame


_LAYERS = (  # (file prefix, layer), first match wins
    ("asyncio/runners.py", "event loop: uvloop's C code (epoll, socket I/O, callbacks)"),
    ("uvicorn/", "HTTP server: uvicorn + httptools"),
    ("aiohttp/", "upstream HTTP client: aiohttp, yarl, multidict"),
    ("yarl/", "upstream HTTP client: aiohttp, yarl, multidict"),
    ("multidict/", "upstream HTTP client: aiohttp, yarl, multidict"),
    ("asyncio/", "asyncio in Python: tasks, futures, locks, timeouts"),
    ("interlock/gateway/translate/", "Interlock's API translators"),
    ("interlock/", "Interlock's own code"),
)


def _layer(module: str) -> str:
    return next((layer for prefix, layer in _LAYERS if module.startswith(prefix)), "other")


def summarise(raw_file: Path, top: int = 15) -> Profile:
    """Self and inclusive sample counts per frame (and self per module) from py-spy's raw (collapsed) output.

    Threads other than the event loop (the thread pool idling in ``queue.get``) are counted apart.
    """
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    other: Counter[str] = Counter()
    samples = 0
    for line in raw_file.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames or frames[0].startswith("Thread._bootstrap"):
            other[frames[-1] if frames else "?"] += count
            continue
        samples += count
        self_counts[frames[-1]] += count
        modules[_module(frames[-1])] += count
        layers[_layer(_module(frames[-1]))] += count
        for frame in set(frames):
            inclusive[frame] += count
    return Profile(
        samples=samples,
        other_threads=other.most_common(3),
        self_frames=self_counts.most_common(top),
        # Frames on every stack (the server's entry point down to the event loop) say nothing; leave them out.
        inclusive_frames=[(f, c) for f, c in inclusive.most_common() if c < samples][:top],
        self_modules=modules.most_common(top),
        self_layers=layers.most_common(),
    )


@dataclass(frozen=True)
class Load:
    """What kept the process busy while it was sampled: a description, and its rate in ``unit``s per second."""

    description: str
    per_s: float
    unit: str  # "request", "stream"


def _table(title: str, rows: list[tuple[str, int]], total: int, us_per_unit: float, unit: str) -> list[str]:
    lines = [f"| {title} | samples | share | ≈ µs per {unit} |", "|---|---:|---:|---:|"]
    lines += [
        f"| `{name}` | {count} | {100 * count / total:.1f} % | {us_per_unit * count / total:,.0f} |"
        for name, count in rows
    ]
    return lines


def profile_summary_markdown(profile: Profile, us_per_unit: float, unit: str) -> str:
    """Four tables: self time by layer, by file and by function; inclusive time by function.

    Each share is also given in CPU µs per request (or stream): the share times the process's CPU time per unit.
    """
    total = max(profile.samples, 1)
    others = ", ".join(f"`{name}` {count}" for name, count in profile.other_threads) or "none"
    parts = [
        f"{profile.samples} samples of the event-loop thread while it was not idle; samples of other threads, "
        f"left out: {others}. Self time in `Runner.run` is the uvloop event loop's own C code (epoll, socket "
        "reads and writes, callback dispatch); self time in a Python frame includes the C functions it calls.",
        "",
        *_table("self time by layer", profile.self_layers, total, us_per_unit, unit),
        "",
        *_table("self time by file", profile.self_modules, total, us_per_unit, unit),
        "",
        *_table("self time by function", profile.self_frames, total, us_per_unit, unit),
        "",
        *_table("inclusive time by function", profile.inclusive_frames, total, us_per_unit, unit),
    ]
    return "\n".join(parts) + "\n"


def profile_under_load(
    pid: int, raw: Path, duration_s: int, load: Callable[[float], Load], us_per_unit: float | None = None
) -> str:
    """Record ``pid`` for ``duration_s`` while ``load(seconds)`` keeps it busy a little longer; markdown summary.

    Shares are turned into µs per request (or stream) with ``us_per_unit``, the CPU per unit measured without the
    profiler, when given; otherwise with the CPU per unit while sampled, which includes py-spy's pauses.
    """
    spy = record(pid, raw, duration_s=duration_s)
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    sent = load(duration_s + 2)
    cores = (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)
    _, stderr = spy.communicate(timeout=duration_s + 60)
    if spy.returncode != 0 or not raw.exists():
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {stderr.decode(errors='replace').strip()[-500:]}")
    sampled_us = cores / sent.per_s * 1e6 if sent.per_s else 0.0
    if us_per_unit is None:
        scale = f"µs columns: the {sampled_us:,.0f} µs of CPU per {sent.unit} while sampled"
    else:
        scale = f"µs columns: the {us_per_unit:,.0f} µs of CPU per {sent.unit} measured without the profiler"
    head = (
        f"Load: {sent.description} while sampled; the process used {cores:.2f} cores, {sampled_us:,.0f} µs of "
        f"CPU per {sent.unit} (py-spy's pauses included). {scale}. Raw samples: `{raw}`.\n\n"
    )
    return head + profile_summary_markdown(summarise(raw), us_per_unit or sampled_us, sent.unit)

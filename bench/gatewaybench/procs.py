"""Start, pin, poll and stop the processes under test, and read their CPU time and peak memory from ``/proc``."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Service",
    "StartupError",
    "cpu_seconds",
    "free_port",
    "machine_busy_seconds",
    "own_cpu_seconds",
    "peak_memory_mb",
    "process_tree",
    "stop_processes",
    "thread_cpu_seconds",
    "wait_quiet",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StartupError(RuntimeError):
    """A service exited or never became ready; the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """One process under test, pinned to ``cores`` with ``taskset``, logging to ``log_path``."""

    name: str
    argv: list[str]
    cores: str
    base_url: str  # the OpenAI API root, ending in /v1
    ready_url: str
    log_path: Path
    env: dict[str, str | None] = field(default_factory=dict)  # None: remove the variable
    ready_headers: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def start(self, ready_timeout_s: float) -> None:
        """Start the process (in its own session, so ``stop`` reaches its children) and wait until it is ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in {**os.environ, **self.env}.items() if v is not None}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                ["taskset", "-c", self.cores, *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._wait_ready(ready_timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        request = urllib.request.Request(self.ready_url, headers=self.ready_headers)
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StartupError(f"{self.name} exited with status {self.proc.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise StartupError(f"{self.name} was not ready within {timeout_s:.0f} s\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the service's process group, then SIGKILL what is left after ``timeout_s``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants that are alive now."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(child) for child in children)
    return pids


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and its descendants, in seconds."""
    total = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total / _CLOCK_TICKS


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User plus system CPU time of one thread of ``pid``, in seconds (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores spent not idle since boot (user, nice, system, irq, softirq, steal), in seconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def own_cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (wrk), in seconds."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def peak_memory_mb(pid: int) -> float:
    """Peak resident set size (``VmHWM``) of ``pid`` and its descendants, in MB (10^6 bytes)."""
    total_kb = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total_kb += int(line.split()[1])
    return total_kb * 1024 / 1e6


def wait_quiet(pids: list[int], *, busy_fraction: float = 0.05, window_s: float = 0.5, timeout_s: float = 30.0) -> bool:
    """Wait until the processes use under ``busy_fraction`` of a core over ``window_s``; False on timeout.

    Run between measurements so that a proxy still working off a backlog does not steal from the next one.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(window_s)
        if sum(cpu_seconds(pid) for pid in pids) - before < busy_fraction * window_s:
            return True
    return False


async def stop_processes(procs: list[asyncio.subprocess.Process], *, grace_s: float = 20.0) -> None:
    """SIGTERM each process still running (the last started first), wait up to ``grace_s`` for each, then kill."""
    for proc in reversed(procs):
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            async with asyncio.timeout(grace_s):
                await proc.wait()
        except TimeoutError:
            proc.kill()

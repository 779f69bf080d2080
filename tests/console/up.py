"""``interlock up`` as a real process for the browser tests: its banner tells the gateway, the console and the
credentials to use."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalStack", "start_up"]

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {
    "gateway": re.compile(r"Interlock gateway\s+(http://\S+)/v1"),
    "key": re.compile(r"API key\s+(sk-il-\S+)"),
    "api": re.compile(r"Control plane\s+(http://\S+)/v1"),
    "console": re.compile(r"Console\s+(http://\S+/console/)"),
    "admin_token": re.compile(r"Admin token\s+(\S+)"),
}


@dataclass
class LocalStack:
    process: subprocess.Popen[str]
    gateway: str
    key: str
    api: str
    console: str
    admin_token: str
    output: list[str]
    reader: threading.Thread

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.reader.join(timeout=5)  # it ends at the pipe's end of file
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_up(state: Path, within_s: float = 30.0) -> LocalStack:
    process = subprocess.Popen(
        [sys.executable, "-m", "interlock", "up", "--port", "0", "--api-port", "0", "--ops-port", "0",
         "--state-dir", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    found: dict[str, str] = {}
    deadline = time.monotonic() + within_s
    while len(found) < len(FIELDS):
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            process.wait(timeout=5)
            reader.join(timeout=5)
            assert process.stdout is not None
            process.stdout.close()
            raise AssertionError("interlock up did not print its banner:\n" + "".join(output))
        output.append(line)
        for name, pattern in FIELDS.items():
            match = pattern.search(line)
            if match and name not in found:
                found[name] = match.group(1)
    return LocalStack(process=process, output=output, reader=reader, **found)

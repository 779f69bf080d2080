"""Dependencies a fault case may break without touching the shared servers: a private Postgres (``initdb`` and
``pg_ctl`` in a temporary directory), a private ``redis-server`` on an ephemeral port, and a TCP server that accepts
connections and never answers (a hung dependency). All bind 127.0.0.1 and clean up after themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

__all__ = [
    "HangingProxy",
    "PrivatePostgres",
    "PrivateRedis",
    "SilentServer",
    "free_port",
    "private_postgres",
    "private_redis",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"this needs {tool!r} on PATH (Debian: postgresql / redis-server)")
    return path


class PrivatePostgres:
    """A Postgres cluster of its own. As root, the server runs as the ``postgres`` user (it refuses root)."""

    def __init__(self, *, ssl_files: tuple[Path, Path] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="interlock-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.ssl_files = ssl_files
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, check=check, cwd=self.dir
        )

    def init(self) -> None:
        self._run(_need("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        conf = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.dir}'",
            "fsync = off",
            "max_connections = 50",
        ]
        if self.ssl_files is not None:
            cert, key = self.ssl_files
            for source, name in ((cert, "server.crt"), (key, "server.key")):
                target = self.data / name
                shutil.copy(source, target)
                target.chmod(0o600)
                if self._as:
                    shutil.chown(target, "postgres")
            conf += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"]
        with (self.data / "postgresql.conf").open("a") as handle:
            handle.write("\n".join(conf) + "\n")

    def start(self) -> None:
        self._run(_need("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clean) or ``immediate`` (as if the machine lost power: recovery at the next start)."""
        self._run(_need("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@asynccontextmanager
async def private_postgres(*, ssl_files: tuple[Path, Path] | None = None) -> AsyncIterator[PrivatePostgres]:
    pg = PrivatePostgres(ssl_files=ssl_files)
    try:
        await asyncio.to_thread(pg.init)
        await asyncio.to_thread(pg.start)
        yield pg
    finally:
        await asyncio.to_thread(pg.cleanup)


class PrivateRedis:
    """A ``redis-server`` of its own (no persistence), optionally with a password; ``pause`` freezes it (SIGSTOP:
    connections are accepted by the kernel and never answered), ``resume`` thaws it."""

    def __init__(self, *, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, password: str | None = None) -> str:
        secret = password if password is not None else self.password
        return f"redis://:{secret}@127.0.0.1:{self.port}/0" if secret else f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self) -> None:
        args = [_need("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def start(self) -> None:
        self._spawn()
        for _ in range(200):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def pause(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@asynccontextmanager
async def private_redis(*, password: str | None = None) -> AsyncIterator[PrivateRedis]:
    redis = PrivateRedis(password=password)
    try:
        await redis.start()
        yield redis
    finally:
        redis.stop()


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (reads and drops what it gets): a hung dependency."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            self._writers.clear()
            await self._server.wait_closed()
            self._server = None


class HangingProxy:
    """A TCP proxy to ``target`` that can hang: while hung it accepts connections and forwards nothing either
    way (a dependency that takes requests and never answers), until ``resume``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hang(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()  # hung: accepted, never answered
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        for task in (
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

"""Every documented wrong input, run as a user runs it (``python -m interlock ...`` as a process), answered by a
short message compared with a golden file in ``tests/testdata/errors/<case>.txt``, a non-zero exit, no traceback,
and nothing written before the checks that failed.

The golden file holds ``exit: N`` and the output with the machine-specific parts replaced (``<tmp>``, ``<port>``,
``<time>``, ``<version>``). After changing a message on purpose, rewrite the files with
``INTERLOCK_UPDATE_GOLDEN=1 ./scripts/test tests/test_error_messages.py`` and review the diff.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.db.support import postgres_url, temporary_postgres
from tests.support import eventually, gateway_readyz

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "testdata" / "errors"
UPDATE = os.environ.get("INTERLOCK_UPDATE_GOLDEN") == "1"

ROUTE = "apiVersion: interlock.dev/v1alpha1\nkind: Route\nmetadata: {{name: {name}}}\nspec:\n{spec}"
BACKEND = (
    "apiVersion: interlock.dev/v1alpha1\nkind: LLMBackend\nmetadata: {name: mock}\n"
    "spec: {provider: mock, models: [{name: mock-small}]}\n"
)


@dataclass
class Run:
    code: int
    output: str


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERLOCK_", "KUBE", "DATABASE_URL", "OTEL_"))}
    return {**env, **extra}


async def interlock(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Run:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", *args,
        cwd=cwd, env=env or clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return Run(proc.returncode or 0, out.decode())


def normalize(text: str, tmp: Path) -> str:
    text = text.replace(str(tmp), "<tmp>").replace(str(ROOT), "<repo>")
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", "<time>", text)
    text = re.sub(r"(127\.0\.0\.1|localhost):\d+", r"\1:<port>", text)
    text = re.sub(r"\b[0-9a-f]{16}\b", "<version>", text)
    return text.rstrip() + "\n"


def check_golden(case: str, got: str) -> None:
    path = GOLDEN / f"{case}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"no golden file {path}; run with INTERLOCK_UPDATE_GOLDEN=1 to write it, then review it"
    assert got == path.read_text(), f"{case}: the message changed (golden file {path.relative_to(ROOT)})"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def up_args(manifests: Path, tmp: Path, *more: str) -> tuple[str, ...]:
    return (
        "up",
        "-f",
        str(manifests),
        "--port",
        "0",
        "--api-port",
        "0",
        "--ops-port",
        "0",
        "--state-dir",
        str(tmp / "state"),
        *more,
    )


@contextmanager
def taken_port() -> Iterator[int]:
    """A port another server listens on for the duration."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- the cases: each returns the run and checks what must not have been written -----------------------------------


async def manifest_case(tmp: Path, files: dict[str, str]) -> Run:
    for name, text in files.items():
        write(tmp / "manifests" / name, text)
    (tmp / "manifests").mkdir(exist_ok=True)
    run = await interlock(*up_args(tmp / "manifests", tmp))
    assert not (tmp / "state").exists(), "interlock up wrote its state before refusing the manifests"
    return run


def route(name: str, spec: str) -> str:
    return ROUTE.format(name=name, spec=spec)


CHAT = "  model: chat\n  targets: [{backend: mock, model: mock-small}]\n"


async def unknown_kind(tmp: Path) -> Run:
    return await manifest_case(tmp, {"routes.yaml": route("chat", CHAT).replace("kind: Route", "kind: Rout")})


async def wrong_api_version(tmp: Path) -> Run:
    return await manifest_case(
        tmp, {"backends.yaml": BACKEND.replace("interlock.dev/v1alpha1", "interlock.dev/v1"), "routes.yaml": ""}
    )


async def empty_directory(tmp: Path) -> Run:
    return await manifest_case(tmp, {})


async def typo_in_a_field(tmp: Path) -> Run:
    spec = "  model: chat\n  targets: [{backend: mock, model: mock-small}]\n  retyr: {attempts: 3}\n"
    return await manifest_case(tmp, {"backends.yaml": BACKEND, "routes.yaml": route("chat", spec)})


async def two_typos(tmp: Path) -> Run:
    spec = "  model: chat\n  targets: [{backend: mock, model: mock-small, wieght: 3}]\n  timeouts: {reqest: 5s}\n"
    return await manifest_case(tmp, {"backends.yaml": BACKEND, "routes.yaml": route("chat", spec)})


async def many_problems_in_many_files(tmp: Path) -> Run:
    spec = "  model: chat\n  targets: [{backend: mock, model: mock-small, weight: -1}]\n"
    return await manifest_case(
        tmp,
        {
            "a-backends.yaml": BACKEND.replace("provider: mock", "provider: mokc"),
            "b-routes.yaml": route("chat", spec) + "---\n" + route("other", "  model: other\n  targets: yes\n"),
            "c-broken.yaml": "kind: Route\nmetadata: {name: [unclosed\n",
            "d-secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {api-key: '%%%'}\n",
        },
    )


async def missing_backend_at_startup(tmp: Path) -> Run:
    spec = "  model: chat\n  targets: [{backend: mokc, model: mock-small}]\n"
    return await manifest_case(tmp, {"backends.yaml": BACKEND, "routes.yaml": route("chat", spec)})


async def port_in_use(tmp: Path) -> Run:
    (tmp / "manifests").mkdir()
    write(tmp / "manifests" / "all.yaml", BACKEND + "---\n" + route("chat", CHAT))
    with taken_port() as port:
        run = await interlock("up", "-f", str(tmp / "manifests"), "--port", str(port), "--api-port", "0",
                              "--ops-port", "0", "--state-dir", str(tmp / "state"))  # fmt: skip
    assert not (tmp / "state").exists(), "interlock up migrated or wrote a key before finding the port taken"
    return run


async def api_port_in_use(tmp: Path) -> Run:
    url = f"sqlite+aiosqlite:///{tmp / 'api.db'}"
    with taken_port() as port:
        run = await interlock("api", "--migrate", "--port", str(port), env=clean_env(DATABASE_URL=url))
    assert not (tmp / "api.db").exists(), "interlock api migrated before finding its port taken"
    return run


async def address_not_on_this_machine(tmp: Path) -> Run:
    run = await interlock(
        "up", "--host", "192.0.2.1", "--port", "0", "--api-port", "0", "--ops-port", "0", "--state-dir", str(tmp / "s")
    )
    assert not (tmp / "s").exists()
    return run


async def port_out_of_range(tmp: Path) -> Run:
    return await interlock(
        "up", "--port", "99999", "--api-port", "0", "--ops-port", "0", "--state-dir", str(tmp / "state")
    )


async def state_dir_not_creatable(tmp: Path) -> Run:
    write(tmp / "file", "")
    return await interlock(
        "up", "--port", "0", "--api-port", "0", "--ops-port", "0", "--state-dir", str(tmp / "file" / "state")
    )


async def bad_bootstrap_key(tmp: Path) -> Run:
    run = await interlock(*up_args(ROOT / "examples" / "local", tmp, "--bootstrap-key", "sk-il-x"))
    assert not (tmp / "state").exists()
    return run


async def unmigrated_database(tmp: Path) -> Run:
    database = temporary_postgres("unmigrated")  # an empty database, dropped at the end
    url = await asyncio.to_thread(database.__enter__)
    try:
        run = await interlock("api", "--port", "0", env=clean_env(DATABASE_URL=url))
    finally:
        await asyncio.to_thread(database.__exit__, None, None, None)
    run.output = run.output.replace(url.rsplit("/", 1)[1], "<database>")
    return run


async def missing_database(tmp: Path) -> Run:
    url = postgres_url("interlock_test_never_created")
    return await interlock("api", "--migrate-only", env=clean_env(DATABASE_URL=url))


async def missing_sqlite_file(tmp: Path) -> Run:
    run = await interlock("api", "--port", "0", env=clean_env(DATABASE_URL=f"sqlite:///{tmp / 'nothing.db'}"))
    assert not (tmp / "nothing.db").exists(), "checking the schema created the database file"
    return run


async def sqlite_directory_missing(tmp: Path) -> Run:
    return await interlock("api", "--migrate-only", env=clean_env(DATABASE_URL=f"sqlite:///{tmp / 'no' / 'x.db'}"))


async def no_kubeconfig(tmp: Path) -> Run:
    env = clean_env(HOME=str(tmp), KUBECONFIG=str(tmp / "kubeconfig"))
    return await interlock("operator", "--all-namespaces", env=env)


async def no_cluster_at_all(tmp: Path) -> Run:
    return await interlock("operator", "--namespace", "default", env=clean_env(HOME=str(tmp)))


async def operator_without_scope(tmp: Path) -> Run:
    return await interlock("operator")


async def gateway_without_config(tmp: Path) -> Run:
    return await interlock("gateway")


async def gateway_config_missing(tmp: Path) -> Run:
    return await interlock("gateway", "--config", str(tmp / "gateway.json"))


async def gateway_config_invalid(tmp: Path) -> Run:
    config = write(tmp / "gateway.json", '{"schema_version": 2, "routes": {"chat": {"model": "chat"}}}')
    return await interlock("gateway", "--config", str(config))


async def bad_setting(tmp: Path) -> Run:
    config = write(tmp / "gateway.json", "{}")
    env = clean_env(INTERLOCK_GATEWAY_MAX_BODY_BYTES="-1", INTERLOCK_GATEWAY_PORT="http")
    return await interlock("gateway", "--config", str(config), env=env)


async def setting_not_json(tmp: Path) -> Run:
    config = write(tmp / "gateway.json", "{}")
    env = clean_env(INTERLOCK_GATEWAY_API_KEYS="sk-il-one,sk-il-two")
    return await interlock("gateway", "--config", str(config), env=env)


async def operator_setting_not_json(tmp: Path) -> Run:
    return await interlock("operator", "-A", env=clean_env(INTERLOCK_OPERATOR_GATEWAY_ENV="FOO=bar"))


async def bad_log_level(tmp: Path) -> Run:
    return await interlock("up", "--log-level", "loud")


async def bad_log_level_env(tmp: Path) -> Run:
    return await interlock("up", env=clean_env(INTERLOCK_LOG_LEVEL="loud"))


async def production_without_admin_token(tmp: Path) -> Run:
    return await interlock("api", env=clean_env(INTERLOCK_API_ENVIRONMENT="production"))


CASES: dict[str, Callable[[Path], Awaitable[Run]]] = {
    f.__name__.replace("_", "-"): f
    for f in (
        port_in_use,
        api_port_in_use,
        address_not_on_this_machine,
        port_out_of_range,
        state_dir_not_creatable,
        unknown_kind,
        wrong_api_version,
        empty_directory,
        typo_in_a_field,
        two_typos,
        many_problems_in_many_files,
        missing_backend_at_startup,
        bad_bootstrap_key,
        unmigrated_database,
        missing_database,
        missing_sqlite_file,
        sqlite_directory_missing,
        no_kubeconfig,
        no_cluster_at_all,
        operator_without_scope,
        gateway_without_config,
        gateway_config_missing,
        gateway_config_invalid,
        bad_setting,
        setting_not_json,
        operator_setting_not_json,
        bad_log_level,
        bad_log_level_env,
        production_without_admin_token,
    )
}


@pytest.mark.parametrize("case", list(CASES))
async def test_wrong_input_gets_its_golden_message(case: str, tmp_path: Path) -> None:
    run = await CASES[case](tmp_path)
    assert "Traceback" not in run.output, run.output
    assert run.code != 0, f"{case}: exit status 0\n{run.output}"
    check_golden(case, f"exit: {run.code}\n{normalize(run.output, tmp_path)}")


def test_every_golden_file_has_a_case() -> None:
    stale = {p.stem for p in GOLDEN.glob("*.txt")} - set(CASES) - {"missing-backend-on-reload"}
    assert not stale, f"golden files without a case: {sorted(stale)}"


async def test_a_reload_that_leaves_a_route_out_says_so_in_the_log_and_on_readyz(tmp_path: Path) -> None:
    """Startup refuses a Route to a missing backend; a reload applies the same rule, keeps every other route, and
    says which route it left out and why, in the log and on ``/readyz``. A reload with a typo keeps the last good
    config, and says so the same way."""
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "examples" / "local", manifests)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", *up_args(manifests, tmp_path),
        cwd=ROOT, env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    log: list[str] = []

    async def collect() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            log.append(line.decode())

    collector = asyncio.create_task(collect())
    try:
        async with asyncio.timeout(30):
            url = ""  # the gateway's ops port, where /readyz is
            while not url:
                line = (await proc.stdout.readline()).decode()
                assert line, "interlock up exited:\n" + "".join(log)
                if "Gateway ops" in line:
                    url = line.split()[2]
        ghost = route("ghost-route", "  model: ghost\n  targets: [{backend: ghost, model: m}]\n")
        write(manifests / "more.yaml", ghost)

        async def left_out() -> dict[str, str]:
            _, body = await gateway_readyz(url)
            rejected: dict[str, str] = body["rejected_routes"]
            return rejected

        rejected = await eventually(left_out, within=15, interval=0.1, what="/readyz lists the left-out route")
        status, body = await gateway_readyz(url)
        assert status == 200, "the other routes still serve"
        write(manifests / "typo.yaml", route("typo", "  model: typo\n  targts: []\n"))

        async def reload_refused() -> str | None:
            _, body = await gateway_readyz(url)
            error: str | None = body["last_error"]
            return error

        last_error = await eventually(reload_refused, within=15, interval=0.1, what="/readyz shows the refused reload")
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            await proc.wait()
        await collector
    assert "Traceback" not in "".join(log)
    assert body["config_version"], body
    said = [line for line in log if "interlock.gatewayconfig:" in line and (" WARNING " in line or " ERROR " in line)]
    readyz = orjson.dumps({"rejected_routes": rejected, "last_error": last_error}, option=orjson.OPT_INDENT_2)
    check_golden("missing-backend-on-reload", normalize("".join(said) + "/readyz: " + readyz.decode(), tmp_path))

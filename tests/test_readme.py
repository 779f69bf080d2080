"""Every code block of README.md is checked, so that no claim drifts from the code.

Each block is preceded by a marker naming its kind of check, invisible on GitHub::

    <!-- check: bash-up -->
    ```bash
    ...

``KINDS`` below says what each kind of check does. A block without a marker, or with an unknown kind, fails
``test_every_snippet_says_how_it_is_checked``: when you add a snippet, pick the kind that runs it for real (a new
kind is a function and a line in ``KINDS``). Blocks that talk to a running ``interlock up`` run against one this
module starts, with the README's placeholders (``http://127.0.0.1:8080``, ``<the printed key>``, ...) replaced by
what it printed. Blocks that need a cluster are checked as far as this machine allows (see ``check_cluster``).
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from interlock.gatewayconfig import compile_config
from interlock.resources import load_manifests
from interlock.resources.manifests import manifest_files
from tests.resources.crdcheck import rejections

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CRDS = {
    kind: yaml.safe_load((ROOT / "operator" / "crds" / f"{plural}.interlock.dev.yaml").read_text())
    for kind, plural in (("LLMBackend", "llmbackends"), ("Route", "routes"))
}
MARKER = re.compile(r"^<!-- check: ([a-z-]+)(?: (\S+))? -->$")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Snippet:
    number: int
    line: int
    heading: str
    language: str
    code: str
    kind: str | None
    arg: str | None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{self.number:02d}-{self.kind or 'unmarked'}-{slug}"

    def where(self) -> str:
        return f"README.md line {self.line} ({self.heading!r}, {self.language or 'no language'} block)"


def snippets() -> list[Snippet]:
    lines = README.read_text().splitlines()
    found: list[Snippet] = []
    heading, i = "(top)", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = MARKER.match(before.strip())
            found.append(
                Snippet(
                    number=len(found) + 1,
                    line=i + 1,
                    heading=heading,
                    language=fence.group(1),
                    code="\n".join(lines[i + 1 : end]) + "\n",
                    kind=marker.group(1) if marker else None,
                    arg=marker.group(2) if marker else None,
                )
            )
            i = end
        i += 1
    return found


# --- a running `interlock up`, shared by the snippets that talk to one ------------------------------------------


@dataclass(frozen=True)
class Up:
    gateway: str
    api: str
    key: str
    admin_token: str

    def placeholders(self) -> dict[str, str]:
        """What the README writes, and what it stands for here."""
        return {
            "http://127.0.0.1:8080": self.gateway,
            "http://127.0.0.1:8081": self.api,
            "<the printed key>": self.key,
            "<$KEY>": self.key,
            "<the printed admin token>": self.admin_token,
        }


def _lines(stream: Any, out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    state = tmp_path_factory.mktemp("readme-up")
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock", "up", "--port", "0", "--api-port", "0", "--ops-port", "0",
         "--state-dir", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    fields: dict[str, str] = {}
    seen = []
    deadline = time.monotonic() + 30
    try:
        while "Admin token" not in fields:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("interlock up printed no banner within 30 s:\n" + "".join(seen)) from None
            seen.append(line)
            name, _, value = line.strip().partition("  ")
            if value:
                fields[name.strip()] = value.strip()
        yield Up(
            gateway=fields["Interlock gateway"].removesuffix("/v1"),
            api=fields["Control plane"].removesuffix("/v1"),
            key=fields["API key"],
            admin_token=fields["Admin token"],
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        reader.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def substitute(code: str, up: Up) -> str:
    for placeholder, value in up.placeholders().items():
        code = code.replace(placeholder, value)
    return code


def run(args: list[str], *, what: Snippet, timeout: float = 60, **kw: Any) -> str:
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    assert done.returncode == 0, f"{what.where()} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def need(tool: str) -> str:
    found = shutil.which(tool)
    assert found, f"the README's snippets need {tool!r} on PATH (Debian: apt-get install {tool})"
    return found


# --- the kinds of check -----------------------------------------------------------------------------------------


def check_shell_syntax(snippet: Snippet, _: Callable[[], Up]) -> None:
    """Parsed by ``bash -n``; every ``./path`` it runs exists and is executable. For commands that start a server
    or the whole check (the quick start), which other tests run."""
    run(["bash", "-n", "-c", snippet.code], what=snippet)
    for word in re.findall(r"(?m)^\s*(\./\S+)", snippet.code):
        path = ROOT / word
        assert path.is_file(), f"{snippet.where()}: {word} does not exist"
        assert os.access(path, os.X_OK), f"{snippet.where()}: {word} is not executable"


def check_python_up(snippet: Snippet, up: Callable[[], Up]) -> None:
    """Run with this venv's Python against a running ``interlock up`` (URLs and printed secrets substituted)."""
    run([sys.executable, "-c", substitute(snippet.code, up())], what=snippet)


def check_bash_up(snippet: Snippet, up: Callable[[], Up]) -> None:
    """Run by bash with ``set -euo pipefail`` against a running ``interlock up``; ``curl`` fails on any HTTP error
    status, so every request in it must succeed."""
    need("curl")
    need("jq")
    prelude = 'set -euo pipefail\ncurl() { command curl --fail-with-body --show-error "$@"; }\n'
    run(["bash", "-c", prelude + substitute(snippet.code, up())], what=snippet)


def _crd_problems(path: Path) -> list[str]:
    problems = []
    for file in manifest_files(path):
        for doc in yaml.safe_load_all(file.read_text()):
            if doc and doc.get("kind") in CRDS:
                name = f"{file.name}: {doc['kind']} {doc['metadata']['name']}"
                problems += [f"{name}: {reason}" for reason in rejections(CRDS[doc["kind"]], doc)]
    return problems


def check_manifests(snippet: Snippet, _: Callable[[], Up]) -> None:
    """Written to a directory: every object passes the CRDs' checks (what ``kubectl apply`` to a cluster would
    refuse), and ``interlock up -f DIR`` starts on it, serving every Route it declares."""
    directory = Path(tempfile.mkdtemp(prefix="interlock-readme-")) / "manifests"
    directory.mkdir()
    (directory / "readme.yaml").write_text(snippet.code)
    assert _crd_problems(directory) == [], snippet.where()
    manifests = load_manifests(manifest_files(directory))
    assert compile_config(manifests.backends, manifests.routes).rejected == {}, snippet.where()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interlock", "up", "-f", str(directory), "--port", "0", "--api-port", "0",
         "--ops-port", "0", "--state-dir", str(directory.parent / "state")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            output += line
            if line.strip().startswith("Models"):
                break
        served = output.strip().splitlines()[-1].split(None, 1)[-1].split(", ")
        assert sorted(served) == sorted(r.spec.model for r in manifests.routes), f"{snippet.where()}:\n{output}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_gateway_command(snippet: Snippet, _: Callable[[], Up]) -> None:
    """The one ``interlock gateway`` command, run with ``--config`` pointing at the compiled ``examples/local/``
    and ``--port`` at a free port: ``/healthz`` must answer."""
    [line] = [ln for ln in snippet.code.splitlines() if ln.strip()]
    args = shlex.split(line)
    assert args[:2] == ["interlock", "gateway"], snippet.where()
    config = Path(tempfile.mkdtemp(prefix="interlock-readme-")) / "gateway.json"
    manifests = load_manifests(manifest_files(ROOT / "examples" / "local"))
    config.write_bytes(compile_config(manifests.backends, manifests.routes).to_json())
    port = _free_port()
    args[args.index("--config") + 1] = str(config)
    args[args.index("--port") + 1] = str(port)
    interlock = str(Path(sys.executable).parent / "interlock")
    proc = subprocess.Popen([interlock, *args[1:]], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, f"{snippet.where()}: the gateway exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"{snippet.where()}: the gateway did not answer within 20 s"
            time.sleep(0.1)  # the poll interval of a deadline, as tests.support.eventually
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _commands(code: str) -> Iterator[tuple[list[str], str]]:
    """Each command line (continuations joined) as words, with the comment lines that follow it."""
    joined = code.replace("\\\n", " ")
    lines = joined.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        comments = []
        for after in lines[i + 1 :]:
            if not after.strip().startswith("#"):
                break
            comments.append(after.strip())
        yield shlex.split(stripped, comments=True), "\n".join(comments)


def _sets(words: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for flag, value in itertools.pairwise(words):
        if flag == "--set":
            key, _, raw = value.partition("=")
            node = values
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = yaml.safe_load(raw)
    return values


def check_cluster(snippet: Snippet, _: Callable[[], Up]) -> None:
    """No cluster here, so: parsed by ``bash -n``; every repository path it names exists; each ``helm install``
    renders its chart (values schema included) with the ``--set`` values of its line, and again with those of each
    comment line below it; each ``kubectl apply -f`` directory loads with Interlock's manifest reader and passes
    the CRDs' checks. ``port-forward``, ``curl`` and the Secret copy are parsed only."""
    from tests.charts.rendering import render

    run(["bash", "-n", "-c", snippet.code], what=snippet)
    for words, comments in _commands(snippet.code):
        for word in words:
            if re.fullmatch(r"(charts|examples|operator|dashboards|api)/[\w./-]*", word):
                assert (ROOT / word).exists(), f"{snippet.where()}: {word} does not exist"
        if words[:2] == ["helm", "install"]:
            chart = ROOT / words[3]
            render(_sets(words), chart=chart)
            for comment in comments.splitlines():
                if "--set" in comment:
                    render({**_sets(words), **_sets(shlex.split(comment.split(":", 1)[-1]))}, chart=chart)
        if words[:2] == ["kubectl", "apply"]:
            path = ROOT / words[words.index("-f") + 1]
            load_manifests(manifest_files(path))
            assert _crd_problems(path) == [], snippet.where()


def check_golden_output(snippet: Snippet, _: Callable[[], Up]) -> None:
    """Shown output: after its ``$ command`` line, the block is the golden message of the named case of
    ``tests/test_error_messages.py`` (which runs it), with the case's directory written as the README does."""
    command, *shown = snippet.code.splitlines()
    assert command.startswith("$ "), snippet.where()
    golden = (ROOT / "tests" / "testdata" / "errors" / f"{snippet.arg}.txt").read_text().splitlines()
    directory = command.split("-f", 1)[1].split()[0].rstrip("/")
    assert [line.replace("<tmp>/manifests", directory) for line in golden[1:]] == shown, snippet.where()


KINDS: dict[str, Callable[[Snippet, Callable[[], Up]], None]] = {
    "shell-syntax": check_shell_syntax,
    "python-up": check_python_up,
    "bash-up": check_bash_up,
    "manifests": check_manifests,
    "gateway-command": check_gateway_command,
    "cluster": check_cluster,
    "golden-output": check_golden_output,
}


def test_every_snippet_says_how_it_is_checked() -> None:
    found = snippets()
    assert len(found) >= 8
    unmarked = [s.where() for s in found if s.kind not in KINDS]
    kinds = "\n".join(f"  {name}: {' '.join((check.__doc__ or '').split())}" for name, check in KINDS.items())
    assert not unmarked, (
        "README code blocks without a known <!-- check: KIND --> marker on the line before them:\n  "
        + "\n  ".join(unmarked)
        + f"\nthe kinds (tests/test_readme.py):\n{kinds}"
    )


@pytest.mark.parametrize("snippet", [s for s in snippets() if s.kind in KINDS], ids=lambda s: s.id)
def test_snippet(snippet: Snippet, request: pytest.FixtureRequest) -> None:
    KINDS[snippet.kind or ""](snippet, lambda: request.getfixturevalue("up"))

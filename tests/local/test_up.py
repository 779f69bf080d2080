"""``interlock up`` as a user runs it: a real process, the example manifests, the official SDK."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import openai
import pytest

from interlock.asgiserver import EmbeddedServer
from interlock.mockprovider import MockSettings, create_app
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(rb"Interlock gateway\s+(http://\S+)/v1")


@asynccontextmanager
async def interlock_up(*args: str, state: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "up", "--port", "0", "--api-port", "0", "--ops-port", "0",
        "--state-dir", str(state), *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = b""
    try:
        async with asyncio.timeout(20):
            while not (match := URL.search(output)):
                line = await proc.stdout.readline()
                assert line, f"interlock up exited early:\n{output.decode()}"
                output += line
        yield match.group(1).decode(), proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(10):
                await proc.wait()


BOOTSTRAP_KEY = "sk-il-local-test-key-0123456789"


async def test_up_serves_the_examples_offline_with_the_bootstrap_key(tmp_path):
    async with interlock_up("--bootstrap-key", BOOTSTRAP_KEY, state=tmp_path) as (url, proc):
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=BOOTSTRAP_KEY, max_retries=0) as client:
            models = sorted([m.id async for m in client.models.list()])
            assert models == ["chat-default", "chat-large", "text-embedding"]
            answer = await client.chat.completions.create(
                model="chat-default", messages=[{"role": "user", "content": "Hello"}]
            )
            assert answer.choices[0].message.content
            stream = await client.chat.completions.create(
                model="chat-large", messages=[{"role": "user", "content": "Hello"}], stream=True
            )
            assert [c async for c in stream][-1].choices[0].finish_reason == "stop"
            embedded = await client.embeddings.create(model="text-embedding", input="hi")
            assert len(embedded.data[0].embedding) > 0
        proc.send_signal(signal.SIGINT)
        assert await proc.wait() == 0


async def test_up_generates_and_prints_a_key_when_none_is_given(tmp_path):
    async with interlock_up(state=tmp_path) as (url, proc):
        rest = await proc.stdout.readline()
        key = rest.decode().split("API key", 1)[1].strip()
        assert key.startswith("sk-il-")
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
            assert [m.id async for m in client.models.list()]


async def test_up_reloads_edited_manifests_and_resolves_secrets(tmp_path):
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "examples" / "local", manifests)
    async with (
        interlock_up("-f", str(manifests), "--bootstrap-key", BOOTSTRAP_KEY, state=tmp_path / "state") as (url, _),
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=BOOTSTRAP_KEY, max_retries=0) as client,
    ):
        (manifests / "more.yaml").write_text(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: key}\nstringData: {api-key: s3cret}\n---\n"
            "apiVersion: interlock.dev/v1alpha1\nkind: LLMBackend\nmetadata: {name: keyed}\n"
            "spec: {provider: mock, credentialsSecretRef: {name: key}, models: [{name: mock-small}]}\n---\n"
            "apiVersion: interlock.dev/v1alpha1\nkind: Route\nmetadata: {name: new}\n"
            "spec: {model: brand-new, targets: [{backend: keyed, model: mock-small}]}\n"
        )

        async def has_new_model() -> bool:
            return "brand-new" in [m.id async for m in client.models.list()]

        await eventually(has_new_model, within=10, interval=0.1, what="edited manifests reloaded")
        answer = await client.chat.completions.create(model="brand-new", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            "apiVersion: interlock.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\n"
            "spec: {model: x, targets: [{backend: ghost, model: m}]}\n",
            "bad.yaml: Route 'r': cannot be served: backend 'ghost' does not exist (LLMBackends here: none)",
        ),
        (
            "apiVersion: interlock.dev/v1alpha1\nkind: LLMBackend\nmetadata: {name: b}\n"
            "spec: {provider: nope, models: [{name: m}]}\n",
            "LLMBackend 'b': spec.provider: Input should be 'openai', 'anthropic', 'vllm' or 'mock', not 'nope'",
        ),
        (
            "apiVersion: interlock.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\n"
            "spec: {model: x, targets: [{backend: b, model: m}], spillover: {target: h, backend: h}}\n",
            "Route 'r': spec.spillover: spillover needs exactly one of target and backend",
        ),
        (
            "apiVersion: interlock.dev/v1alpha1\nkind: LLMBackend\nmetadata: {name: b}\n"
            "spec: {provider: mock, models: [{name: m}]}\n---\n"
            "apiVersion: interlock.dev/v1alpha1\nkind: LLMBackend\nmetadata: {name: h}\n"
            "spec: {provider: mock, models: [{name: h1}, {name: h2}]}\n---\n"
            "apiVersion: interlock.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\n"
            "spec: {model: x, targets: [{backend: b, model: m}], spillover: {target: h}}\n",
            "bad.yaml: Route 'r': cannot be served: spillover: backend 'h' serves several models (h1, h2) and not "
            "'x': name one with spillover.model",
        ),
    ],
)
async def test_up_refuses_bad_manifests_with_a_clear_message(tmp_path, manifest, expected):
    (tmp_path / "bad.yaml").write_text(manifest)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "up", "-f", str(tmp_path), "--port", "0", "--api-port", "0",
        "--ops-port", "0", "--state-dir", str(tmp_path / "state"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(20):
        output, _ = await proc.communicate()
    assert proc.returncode == 2
    assert expected in output.decode()
    assert "Traceback" not in output.decode()


async def _banner_rest(proc: asyncio.subprocess.Process) -> dict[str, str]:
    """The banner's fields after the gateway URL: ``API key``, ``Control plane``, ``Admin token``..."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(10):
        while "Admin token" not in fields:
            line = (await proc.stdout.readline()).decode()
            assert line, "interlock up stopped printing before the admin token"
            name, _, value = line.strip().partition("  ")
            if value:
                fields[name.strip()] = value.strip()
    return fields


async def test_up_serves_the_control_plane_with_the_first_tenant_and_meters_usage(tmp_path):
    admin = "local-admin-token-for-the-test"
    async with interlock_up("--bootstrap-key", BOOTSTRAP_KEY, "--admin-token", admin, state=tmp_path) as (url, proc):
        banner = await _banner_rest(proc)
        assert banner["Admin token"] == admin
        api = banner["Control plane"].removesuffix("/v1")
        ops = banner["Gateway ops"].split()[0]
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{ops}/readyz")).json()["status"] == "ready"
            assert "interlock_requests_total" in (await http.get(f"{ops}/metrics")).text
            assert (await http.get(f"{url}/metrics")).status_code == 404, "not on the client port"
        async with (
            openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=BOOTSTRAP_KEY, max_retries=0) as client,
            httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {admin}"}) as admin_api,
        ):
            for _ in range(3):
                await client.chat.completions.create(model="chat-default", messages=[{"role": "user", "content": "Hi"}])
            tenants = (await admin_api.get("/v1/tenants")).json()["data"]
            assert [t["name"] for t in tenants] == ["default"]

            async def three_usage_rows() -> bool:
                usage = (await admin_api.get("/v1/usage", params={"tenant_id": tenants[0]["id"]})).json()
                return usage["totals"]["requests"] == 3

            await eventually(three_usage_rows, within=10, interval=0.1, what="usage of 3 requests in the control plane")
            # No stand-in key check any more: a key the control plane does not know is refused.
            stranger = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-il-not-a-key-of-anyone", max_retries=0)
            with pytest.raises(openai.AuthenticationError):
                await stranger.models.list()
            await stranger.close()
            # A key created through the admin API works at the gateway within the snapshot interval.
            created = await admin_api.post(f"/v1/tenants/{tenants[0]['id']}/keys", json={"name": "second"})
            assert created.status_code == 201
            second = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=created.json()["key"], max_retries=0)

            async def second_key_works() -> bool:
                try:
                    return bool([m.id async for m in second.models.list()])
                except openai.AuthenticationError:
                    return False

            await eventually(second_key_works, within=10, interval=0.2, what="a new key accepted by the gateway")
            await second.close()


async def test_up_refuses_a_malformed_bootstrap_key(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "up", "--port", "0", "--api-port", "0", "--ops-port", "0",
        "--state-dir", str(tmp_path), "--bootstrap-key", "k",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(30):
        output, _ = await proc.communicate()
    assert proc.returncode == 2
    assert "--bootstrap-key: " in output.decode()
    assert "sk-il-" in output.decode()
    assert "Traceback" not in output.decode()


async def _start_and_read_banner(state: Path, *args: str) -> dict[str, str]:
    """Start ``interlock up``, read its banner, stop it; the banner's fields."""
    async with interlock_up(*args, state=state) as (url, proc):
        fields = await _banner_rest(proc)
        fields["url"] = url
    return fields


async def test_up_keeps_its_admin_token_and_key_across_restarts(tmp_path):
    first = await _start_and_read_banner(tmp_path)
    stored = json.loads((tmp_path / "credentials.json").read_text())
    assert stored == {"admin_token": first["Admin token"], "key": first["API key"]}
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600

    async with interlock_up(state=tmp_path) as (url, proc):
        again = await _banner_rest(proc)
        assert (again["API key"], again["Admin token"]) == (first["API key"], first["Admin token"])
        api = again["Control plane"].removesuffix("/v1")
        async with (
            httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {first['Admin token']}"}) as admin,
            openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=first["API key"], max_retries=0) as client,
        ):
            [tenant] = (await admin.get("/v1/tenants")).json()["data"]
            keys = (await admin.get(f"/v1/tenants/{tenant['id']}/keys")).json()["data"]
            assert len(keys) == 1, "a restart mints no new key"
            assert [m.id async for m in client.models.list()]
            # A revoked key is replaced by a new one on the next start, and said so.
            assert (await admin.delete(f"/v1/keys/{keys[0]['id']}")).status_code in (200, 204)

    replaced = await _start_and_read_banner(tmp_path)
    assert replaced["Admin token"] == first["Admin token"]
    assert replaced["API key"] != first["API key"]
    assert replaced["API key"].startswith("sk-il-")


async def test_up_flags_replace_the_kept_token_and_key(tmp_path):
    await _start_and_read_banner(tmp_path)
    given = await _start_and_read_banner(
        tmp_path, "--admin-token", "a-new-admin-token-for-the-test", "--bootstrap-key", BOOTSTRAP_KEY
    )
    assert (given["Admin token"], given["API key"]) == ("a-new-admin-token-for-the-test", BOOTSTRAP_KEY)
    kept = await _start_and_read_banner(tmp_path)
    assert (kept["Admin token"], kept["API key"]) == ("a-new-admin-token-for-the-test", BOOTSTRAP_KEY)


async def test_up_refuses_a_state_file_it_cannot_read(tmp_path):
    (tmp_path / "credentials.json").write_text("not json")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "up", "--port", "0", "--api-port", "0", "--ops-port", "0",
        "--state-dir", str(tmp_path),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(30):
        output, _ = await proc.communicate()
    assert proc.returncode == 2
    assert output.decode().startswith(f"interlock up: {tmp_path / 'credentials.json'}: cannot read it")
    assert "delete it" in output.decode()
    assert not (tmp_path / "interlock.db").exists()


async def test_up_spreads_a_backend_over_its_endpoints(tmp_path):
    """``spec.endpoints``: one backend, two engines (simulated), picked per request by the gateway."""
    engines = [create_app(MockSettings(engine_metrics=True)) for _ in range(2)]
    servers = [EmbeddedServer(engine, lifespan="off") for engine in engines]
    roots = [await server.start() for server in servers]
    try:
        manifests = tmp_path / "manifests"
        manifests.mkdir()
        endpoints = ", ".join(f"{{url: '{root}/v1'}}" for root in roots)
        (manifests / "pool.yaml").write_text(
            "apiVersion: interlock.dev/v1alpha1\nkind: LLMBackend\nmetadata: {name: pool}\n"
            f"spec: {{provider: vllm, endpoints: [{endpoints}], models: [{{name: llama}}]}}\n---\n"
            "apiVersion: interlock.dev/v1alpha1\nkind: Route\nmetadata: {name: chat}\n"
            "spec: {model: chat, targets: [{backend: pool, model: llama}]}\n"
        )
        async with (
            interlock_up("-f", str(manifests), "--bootstrap-key", BOOTSTRAP_KEY, state=tmp_path / "state") as (url, _),
            openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=BOOTSTRAP_KEY, max_retries=0) as client,
        ):
            for i in range(4):
                answer = await client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": f"different question number {i}"}]
                )
                assert answer.choices[0].message.content
        served = [engine.stats.by_path.get("/v1/chat/completions", 0) for engine in engines]
        assert sum(served) == 4
        assert min(served) >= 1
    finally:
        for server in servers:
            await server.stop()

"""``interlock up`` as a user runs it: a real process, the example manifests, the official SDK."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import openai
import pytest

from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(rb"Interlock gateway\s+(http://\S+)/v1")


@asynccontextmanager
async def interlock_up(*args: str) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "up", "--port", "0", *args,
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


async def test_up_serves_the_examples_offline_with_the_bootstrap_key():
    async with interlock_up("--bootstrap-key", "sk-il-local") as (url, proc):
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-il-local", max_retries=0) as client:
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


async def test_up_generates_and_prints_a_key_when_none_is_given():
    async with interlock_up() as (url, proc):
        rest = await proc.stdout.readline()
        key = rest.decode().split("API key", 1)[1].strip()
        assert key.startswith("sk-il-")
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
            assert [m.id async for m in client.models.list()]


async def test_up_reloads_edited_manifests_and_resolves_secrets(tmp_path):
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "examples" / "local", manifests)
    async with (
        interlock_up("-f", str(manifests), "--bootstrap-key", "k") as (url, _),
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0) as client,
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
            "Route 'r' cannot be served: backend 'ghost' does not exist",
        ),
        (
            "apiVersion: interlock.dev/v1alpha1\nkind: LLMBackend\nmetadata: {name: b}\n"
            "spec: {provider: nope, models: [{name: m}]}\n",
            "LLMBackend 'b': spec.provider: Input should be 'openai', 'anthropic', 'vllm' or 'mock'",
        ),
    ],
)
async def test_up_refuses_bad_manifests_with_a_clear_message(tmp_path, manifest, expected):
    (tmp_path / "bad.yaml").write_text(manifest)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "up", "-f", str(tmp_path), "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(20):
        output, _ = await proc.communicate()
    assert proc.returncode == 2
    assert expected in output.decode()
    assert "Traceback" not in output.decode()

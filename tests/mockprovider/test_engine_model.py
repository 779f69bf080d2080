"""The engine model behind ``engine_metrics``: prefix reuse and eviction, KV-bound admission, prefill and decode time.

Times are checked only as lower bounds the engine model guarantees (a sleep is never shorter), never as upper ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from interlock.mockprovider import Fault
from tests.mockprovider.served import Serve, Served
from tests.mockprovider.test_engine_metrics import scrape, value
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

SYSTEM_A = "You are a careful assistant for the accounts team. " * 40  # about 400 tokens
SYSTEM_B = "Answer in French, briefly, and cite the handbook section. " * 40


def chat(system: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


async def prefix(served: Served, model: str = "m") -> tuple[float, float]:
    samples, _ = await scrape(served)
    return (
        value(samples, "vllm:prefix_cache_queries_total", model_name=model),
        value(samples, "vllm:prefix_cache_hits_total", model_name=model),
    )


async def test_a_shared_system_prompt_hits_the_prefix_cache(serve: Serve) -> None:
    served = await serve(engine_metrics=True)
    first = await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_A, "one?"))
    assert first.usage
    queries, hits = await prefix(served)
    assert (queries, hits) == (first.usage.prompt_tokens, 0)
    second = await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_A, "two?"))
    assert second.usage
    queries, hits = await prefix(served)
    assert queries == first.usage.prompt_tokens + second.usage.prompt_tokens
    # The system prompt's whole blocks hit; the question, its marker and the block shared with the prompt's end don't.
    assert second.usage.prompt_tokens - 2 * 16 - 10 < hits < second.usage.prompt_tokens
    # The same conversation through the Messages API shares the prefix too.
    await served.anthropic.messages.create(
        model="m", max_tokens=10, system=SYSTEM_A, messages=[{"role": "user", "content": "three?"}]
    )
    assert (await prefix(served))[1] > 2 * hits * 0.9
    other = await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_B, "one?"))
    assert other.usage
    before = (await prefix(served))[1]
    await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_B + "x", "one?"))
    assert (await prefix(served))[1] > before  # B's blocks up to the change are reused


async def test_no_prefix_caching_never_hits(serve: Serve) -> None:
    served = await serve(engine_metrics=True, prefix_caching=False)
    for question in ("one?", "two?"):
        await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_A, question))
    queries, hits = await prefix(served)
    assert queries > 0
    assert hits == 0


async def test_a_small_cache_evicts_the_least_recently_used_prefix(serve: Serve) -> None:
    served = await serve(engine_metrics=True, kv_cache_tokens=700)  # room for one system prompt, not two
    await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_A, "one?"))
    await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_B, "one?"))  # evicts A
    _, hits = await prefix(served)
    assert hits == 0
    await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_A, "two?"))
    _, hits = await prefix(served)
    # Eviction ate A's prefix from its tail: only its first blocks were left to reuse.
    assert 0 < hits < 300
    await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_A, "three?"))
    _, more = await prefix(served)
    assert more - hits > 300  # A was computed whole again, and is cached whole now


async def test_a_request_waits_for_kv_blocks_even_with_free_slots(serve: Serve) -> None:
    served = await serve(engine_metrics=True, max_num_seqs=8, kv_cache_tokens=800, stream_chunks=3)
    model = {"model_name": "m", "engine": "0"}
    body: dict[str, Any] = {"model": "m", "messages": chat(SYSTEM_A, "held"), "stream": True}
    served.provider.push_faults([Fault(first_token_delay_s=60)])
    async with served.http.stream("POST", "/v1/chat/completions", json=body) as held:
        assert held.status_code == 200
        second = asyncio.create_task(served.client.chat.completions.create(model="m", messages=chat(SYSTEM_B, "x")))

        async def waiting_for_blocks() -> bool:
            samples, _ = await scrape(served)
            running = value(samples, "vllm:num_requests_running", **model)
            return (running, value(samples, "vllm:num_requests_waiting", **model)) == (1, 1)

        await eventually(waiting_for_blocks, within=5, what="the second request waiting for KV blocks")
    answer = await second  # the held request left: its blocks are free, and B's prompt fits
    assert answer.usage


async def test_prefill_takes_its_time_per_uncached_token_and_decode_per_output_token(serve: Serve) -> None:
    per_token = 0.0002
    served = await serve(engine_metrics=True, prefill_s_per_token=per_token, decode_s_per_token=0.002, stream_chunks=5)
    first = await served.client.chat.completions.create(model="m", messages=chat(SYSTEM_A, "one?"))
    assert first.usage
    samples, _ = await scrape(served)
    assert (
        value(samples, "vllm:time_to_first_token_seconds_sum", model_name="m") >= first.usage.prompt_tokens * per_token
    )
    assert value(samples, "vllm:e2e_request_latency_seconds_sum", model_name="m") >= 5 * 0.002
    stream = await served.client.chat.completions.create(
        model="m", messages=chat(SYSTEM_A, "two?"), stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage
    samples, _ = await scrape(served)
    # Seven intervals between the stream's eight chunks, each at least one decode step.
    assert value(samples, "vllm:inter_token_latency_seconds_sum", model_name="m") >= 7 * 0.002
    assert value(samples, "vllm:prefix_cache_hits_total", model_name="m") > 300

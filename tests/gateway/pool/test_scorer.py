"""The pure parts of the picker: the scorer, prefix hashing and its bounded index, engine metrics, endpoint URLs."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from interlock.gateway.pool.discovery import endpoint_urls
from interlock.gateway.pool.prefix import PrefixIndex, prefix_hashes
from interlock.gateway.pool.scorer import PickerWeights, kv_pressure, pick, score
from interlock.gateway.pool.scraper import parse_engine_metrics


@dataclass
class E:
    inflight: int = 0
    external_load: float = 0.0
    kv_usage: float = 0.0
    batch_size: float = 0.0


W = PickerWeights(load=1.0, kv_cache=2.0, prefix=4.0, queue=4.0, kv_threshold=0.5)


def test_score_combines_load_kv_and_prefix() -> None:
    e = E(inflight=2, external_load=3, kv_usage=0.75)
    assert score(e, 0.0, W, use_engine=True) == 2 + 3 + 2 * 0.5  # halfway from the threshold to full
    assert score(e, 0.5, W, use_engine=True) == 5 + 1 - 2
    # Without (fresh) engine metrics: the gateway's own in-flight count only, KV unknown.
    assert score(e, 0.0, W, use_engine=False) == 2


def test_requests_beyond_the_engines_batch_weigh_more() -> None:
    # 6 in flight on 4 slots: this request would wait behind 2 others, itself the third.
    assert score(E(inflight=6, batch_size=4), 0.0, W, use_engine=False) == 6 + 4 * 3
    # 4 in flight on 4 slots: every slot is taken, so this request waits too (the first in line).
    assert score(E(inflight=4, batch_size=4), 0.0, W, use_engine=False) == 4 + 4 * 1
    assert score(E(inflight=3, batch_size=4), 0.0, W, use_engine=False) == 3  # a slot is free
    assert score(E(inflight=6), 0.0, W, use_engine=False) == 6  # batch size not learned yet
    # A full engine holding the prefix loses to an idle one once this request would wait for a slot there.
    full = E(inflight=4, batch_size=4)
    assert pick([full, E(inflight=0)], {0: 1.0}, W, use_engine=False) == 1
    assert pick([E(inflight=3, batch_size=4), E(inflight=0)], {0: 1.0}, W, use_engine=False) == 0


def test_pick_least_loaded_then_kv_headroom() -> None:
    assert pick([E(inflight=3), E(inflight=1), E(inflight=2)], {}, W, use_engine=False) == 1
    assert pick([E(external_load=2, kv_usage=0.9), E(external_load=2, kv_usage=0.1)], {}, W, use_engine=True) == 1
    # A full KV cache is worth two requests of queue at these weights.
    assert pick([E(external_load=1, kv_usage=1.0), E(external_load=2, kv_usage=0.0)], {}, W, use_engine=True) == 1
    assert pick([E(external_load=1, kv_usage=0.7), E(external_load=2, kv_usage=0.0)], {}, W, use_engine=True) == 0


def test_kv_usage_below_the_threshold_does_not_steer_ties() -> None:
    """Usage read up to a scrape ago must not send every tie to the same pod: below the threshold it counts
    nothing, so ties rotate as with least in flight."""
    assert kv_pressure(0.8, 0.8) == 0.0
    assert kv_pressure(0.3, 0.8) == 0.0
    assert kv_pressure(0.9, 0.8) == pytest.approx(0.5)
    assert kv_pressure(1.0, 0.8) == pytest.approx(1.0)
    pool = [E(kv_usage=0.3), E(kv_usage=0.05), E(kv_usage=0.2)]
    assert [pick(pool, {}, W, use_engine=True, start=s) for s in range(3)] == [0, 1, 2]
    assert [pick(pool, {}, PickerWeights(kv_threshold=0.0), use_engine=True, start=s) for s in range(3)] == [1] * 3
    # score and pick agree above the threshold too.
    near_full = [E(inflight=1, kv_usage=0.95), E(inflight=1, kv_usage=0.85)]
    assert score(near_full[0], 0.0, PickerWeights(), use_engine=True) == pytest.approx(1 + 0.75)
    assert pick(near_full, {}, PickerWeights(), use_engine=True) == 1


def test_prefix_affinity_wins_unless_the_endpoint_is_too_busy() -> None:
    both = [E(inflight=3), E(inflight=0)]
    assert pick(both, {0: 1.0}, W, use_engine=False) == 0  # 3 - 4 < 0
    assert pick([E(inflight=5), E(inflight=0)], {0: 1.0}, W, use_engine=False) == 1  # 5 - 4 > 0
    assert pick(both, {0: 0.5}, W, use_engine=False) == 1  # half the prefix is worth 2 requests only
    assert pick(both, {0: 1.0}, PickerWeights(prefix=0), use_engine=False) == 1  # affinity off


def test_ties_rotate_with_start() -> None:
    idle = [E(), E(), E()]
    assert [pick(idle, {}, W, use_engine=False, start=s) for s in range(6)] == [0, 1, 2, 0, 1, 2]


def body(system: str, question: str, **extra: object) -> bytes:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return orjson.dumps({"model": "m", **extra, "messages": messages, "stream": True})


def test_prefix_hashes_chain_from_the_messages() -> None:
    system = "You are helpful and precise. " * 40
    a = prefix_hashes(body(system, "first? " * 30), 64, 1000)
    b = prefix_hashes(body(system, "second? " * 30), 64, 1000)
    assert len(a) > 10
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert shared >= len(system) // 64 - 1  # every block of the system prompt
    # Fields before "messages" (the model, a user id) do not matter; a different system prompt does.
    assert prefix_hashes(body(system, "first?", user="u-7", temperature=0.2), 64, 1000)[:shared] == a[:shared]
    assert prefix_hashes(body("Other. " + system, "first? " * 30), 64, 1000)[0] != a[0]
    assert len(prefix_hashes(body(system, "q"), 64, 4)) == 4  # bounded
    assert prefix_hashes(b"{}", 64, 10) == []


def test_prefix_index_finds_the_longest_match_per_endpoint() -> None:
    index = PrefixIndex(capacity=100)
    index.add([1, 2, 3, 4], bit=1 << 0)
    index.add([1, 2, 9], bit=1 << 1)
    depths: dict[int, int] = {}
    assert index.match([1, 2, 3, 4, 5], candidates=0b111, depths=depths) == 0b11
    assert depths == {0: 4, 1: 2}
    depths.clear()
    assert index.match([1, 2, 3], candidates=0b10, depths=depths) == 0b10  # only candidates count
    assert depths == {1: 2}
    depths.clear()
    assert index.match([7, 1], candidates=0b11, depths=depths) == 0
    assert depths == {}


def test_prefix_index_is_bounded_and_forgets_the_oldest_generation() -> None:
    index = PrefixIndex(capacity=10)
    index.add(list(range(8)), bit=1)
    index.add(list(range(100, 108)), bit=2)  # the newer generation overflows: it becomes the old one
    assert len(index) == 16
    index.add([0, 1], bit=4)  # found in the old generation: carried into the new with the new bit
    index.add(list(range(200, 215)), bit=2)  # overflow again: the generation holding 100.. is dropped
    assert len(index) <= 2 * 10 + 15
    depths: dict[int, int] = {}
    assert index.match([100], candidates=0b111, depths=depths) == 0
    for _ in range(50):
        index.add(list(range(1000, 1030)), bit=1)
    assert len(index) <= 2 * (10 + 30)
    index.forget(1)
    assert index.match(list(range(1000, 1030)), candidates=0b111, depths=depths) == 0


def test_an_endpoints_share_of_the_index_is_bounded_like_its_kv_cache() -> None:
    """With a limit, an endpoint keeps only that many of the blocks it was sent, least recently sent out first and
    a prefix's tail before its head (as an engine frees them); other endpoints' bits stay."""
    index = PrefixIndex(capacity=1000)
    depths: dict[int, int] = {}
    index.add([1, 2, 3], bit=1)  # before any limit: not tracked, ages out with the generations only
    index.set_limit(2, 5)
    assert index.limit(2) == 5
    index.add([10, 11, 12], bit=2)  # conversation A
    index.add([10, 11, 12], bit=1)
    index.add([20, 21], bit=2)  # conversation B: 5 blocks, at the limit
    assert index.match([10, 11, 12], 0b11, depths) == 0b11
    assert depths == {0: 3, 1: 3}
    index.add([30, 31], bit=2)  # two more: A's tail goes first, then its next block
    depths.clear()
    assert index.match([10, 11, 12], 0b10, depths) == 0b10
    assert depths == {1: 1}
    depths.clear()
    assert index.match([10, 11, 12], 0b01, depths) == 0b01
    assert depths == {0: 3}
    index.add([20, 21], bit=2)  # sent again: B is the most recent now
    index.add([40], bit=2)
    depths.clear()
    assert index.match([20, 21], 0b10, depths) == 0b10
    assert depths == {1: 2}
    assert index.match([10], 0b10, {}) == 0  # A's head went before B
    index.set_limit(2, 2)  # a smaller cache (or more of the engine's traffic from elsewhere): trimmed at once
    depths.clear()
    assert index.match([20, 21], 0b10, depths) == 0b10
    assert depths == {1: 1}
    assert index.match([40], 0b10, {}) == 0b10
    assert index.match([30], 0b10, {}) == 0
    index.set_limit(2, None)
    index.add(list(range(100, 200)), bit=2)
    assert index.match([40], 0b10, {}) == 0b10  # unbounded again
    index.forget(2)
    assert index.limit(2) is None
    assert index.match([40], 0b10, {}) == 0


VLLM = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="a"} 3.0
vllm:num_requests_running{engine="0",model_name="b"} 1.0
vllm:num_requests_waiting{engine="0",model_name="a"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="a"} 0.25
vllm:prefix_cache_queries_total{engine="0",model_name="a"} 1000.0
vllm:prefix_cache_hits_total{engine="0",model_name="a"} 600.0
vllm:prompt_tokens_total{engine="0",model_name="a"} 1000.0
vllm:prompt_tokens_total{engine="0",model_name="b"} 500.0
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",num_gpu_blocks="2048"} 1.0
"""


def test_parse_vllm_metrics() -> None:
    sample = parse_engine_metrics(VLLM)
    assert sample is not None
    assert (sample.running, sample.waiting, sample.kv_usage) == (4.0, 2.0, 0.25)
    assert (sample.prefix_hits, sample.prefix_queries) == (600.0, 1000.0)
    assert (sample.prompt_tokens, sample.kv_capacity_tokens) == (1500.0, 2048 * 16)
    v0 = parse_engine_metrics('vllm:num_requests_running 1\nvllm:gpu_cache_usage_perc{m="x"} 0.5 1712345678\n')
    assert v0 is not None
    assert (v0.running, v0.kv_usage, v0.prefix_queries) == (1.0, 0.5, None)


def test_parse_tgi_and_llamacpp_metrics() -> None:
    tgi = parse_engine_metrics("tgi_queue_size 4\ntgi_batch_current_size 8\n")
    assert tgi is not None
    assert (tgi.running, tgi.waiting, tgi.kv_usage) == (8.0, 4.0, 0.0)
    llama = parse_engine_metrics(
        "llamacpp:requests_processing 2\nllamacpp:requests_deferred 5\nllamacpp:kv_cache_usage_ratio 0.75\n"
    )
    assert llama is not None
    assert (llama.running, llama.waiting, llama.kv_usage) == (2.0, 5.0, 0.75)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not metrics at all",
        "other_metric 5\n",
        "vllm:num_requests_running NaN\n",
        "vllm:num_requests_running -3\n",
        'vllm:num_requests_running{a="b"}\n',
        "vllm:num_requests_running x\n",
    ],
)
def test_hostile_or_foreign_metrics_give_no_sample(text: str) -> None:
    assert parse_engine_metrics(text) is None


@pytest.mark.parametrize(
    "labels",
    [
        '{block_size="16"}',  # no block count
        '{num_gpu_blocks="None",block_size="16"}',  # not known (vLLM before its profiling run)
        '{num_gpu_blocks="99999999999999",block_size="999999999"}',  # more than any engine: ignored
        '{xnum_gpu_blocks="5",block_size="16"}',
        "",
    ],
)
def test_a_kv_cache_size_that_is_missing_or_absurd_is_ignored(labels: str) -> None:
    sample = parse_engine_metrics(f"vllm:num_requests_running 0\nvllm:cache_config_info{labels} 1\n")
    assert sample is not None
    assert sample.kv_capacity_tokens is None


def test_infinite_values_are_ignored() -> None:
    sample = parse_engine_metrics(
        "vllm:num_requests_running 2\nvllm:num_requests_waiting +Inf\nvllm:prompt_tokens_total +Inf\n"
    )
    assert sample is not None
    assert (sample.running, sample.waiting, sample.prompt_tokens) == (2.0, 0.0, None)
    assert parse_engine_metrics("vllm:num_requests_running +Inf\n") is None


def test_parse_caps_kv_usage_at_one() -> None:
    sample = parse_engine_metrics("vllm:num_requests_running 0\nvllm:kv_cache_usage_perc 7\n")
    assert sample is not None
    assert sample.kv_usage == 1.0


def test_endpoint_urls_take_scheme_path_and_port() -> None:
    assert endpoint_urls([("10.0.0.2", None), ("10.0.0.1", None)], "http://llama.ns.svc:8000/v1", 8080) == [
        "http://10.0.0.1:8080/v1",
        "http://10.0.0.2:8080/v1",
    ]
    assert endpoint_urls([("fd00::5", 9000)], "https://x.svc/v1", None) == ["https://[fd00::5]:9000/v1"]
    assert endpoint_urls([("10.0.0.1", None)], "http://x.svc/v1", None) == ["http://10.0.0.1:80/v1"]
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        endpoint_urls([("evil.example.com", None)], "http://x.svc/v1", None)


def test_pick_chooses_the_lowest_score() -> None:
    """``pick`` inlines ``score`` for speed: the two must agree on every input."""
    import random

    rng = random.Random(7)
    for _ in range(500):
        candidates = [
            E(
                inflight=rng.randrange(6),
                external_load=rng.randrange(8),
                kv_usage=rng.random(),
                batch_size=rng.choice([0, 2, 4]),
            )
            for _ in range(rng.randrange(1, 6))
        ]
        matched = {i: rng.random() for i in range(len(candidates)) if rng.random() < 0.4}
        use_engine = rng.random() < 0.5
        start = rng.randrange(10)
        chosen = pick(candidates, matched, W, use_engine=use_engine, start=start)
        scores = [score(c, matched.get(i, 0.0), W, use_engine=use_engine) for i, c in enumerate(candidates)]
        assert scores[chosen] == min(scores)
        # Among equals, the first at or after ``start``.
        order = [(start + k) % len(candidates) for k in range(len(candidates))]
        assert chosen == next(i for i in order if scores[i] == min(scores))

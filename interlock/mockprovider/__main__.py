"""``python -m interlock.mockprovider --port 9000 [--chunk-delay 0.02] [--engine-metrics]``: serve the mock alone."""

from __future__ import annotations

import argparse

import uvicorn

from interlock.mockprovider.provider import create_app
from interlock.mockprovider.settings import MockSettings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m interlock.mockprovider", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--stream-chunks", type=int, default=None, help="exact content chunks per generated answer")
    parser.add_argument("--embedding-dim", type=int, default=256)
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer <key>` (or `x-api-key`)")
    parser.add_argument("--cached-tokens", type=int, default=None, help="report this many cached prompt tokens")
    parser.add_argument(
        "--cache-creation-tokens", type=int, default=None, help="Anthropic: report this many cache-write tokens"
    )
    parser.add_argument(
        "--engine-metrics", action="store_true", help="serve vLLM's own metrics (vllm:*) at GET /metrics"
    )
    parser.add_argument("--max-num-seqs", type=int, default=256, help="engine metrics: requests running at once")
    parser.add_argument("--kv-cache-tokens", type=int, default=16384, help="engine metrics: KV-cache capacity")
    parser.add_argument("--block-size", type=int, default=16, help="engine metrics: tokens per KV-cache block")
    parser.add_argument(
        "--no-prefix-caching", action="store_true", help="engine metrics: never reuse a cached prompt prefix"
    )
    parser.add_argument(
        "--prefill-s-per-token", type=float, default=0.0, help="engine model: prefill seconds per uncached token"
    )
    parser.add_argument("--decode-s-per-token", type=float, default=0.0, help="engine model: seconds per output token")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    settings = MockSettings(
        chunk_delay_s=args.chunk_delay,
        stream_chunks=args.stream_chunks,
        embedding_dim=args.embedding_dim,
        api_key=args.api_key,
        cached_tokens=args.cached_tokens,
        cache_creation_tokens=args.cache_creation_tokens,
        engine_metrics=args.engine_metrics,
        max_num_seqs=args.max_num_seqs,
        kv_cache_tokens=args.kv_cache_tokens,
        block_size=args.block_size,
        prefix_caching=not args.no_prefix_caching,
        prefill_s_per_token=args.prefill_s_per_token,
        decode_s_per_token=args.decode_s_per_token,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        lifespan="off",
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()

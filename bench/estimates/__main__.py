"""``python -m bench.estimates --server URL``: the usage estimate against a running llama.cpp server's counts.

Three measurements, each a table:

1. Prompts: every OpenAI chat request fixture of the translator tests (``tests/testdata/translate``: the OpenAI
   requests, and the OpenAI requests that Anthropic requests become) sent to the engine; its ``prompt_tokens``
   against ``prompt_tokens()`` of the same request. Requests the engine refuses (images without a vision
   projector) are listed, not counted.
2. Natural text: the answer texts of the response fixtures, tokenized by the engine (``POST /tokenize``) against
   ``count_text()``: what ``answer_tokens()`` counts for a real model's answer.
   And the same prompts corrected as the gateway does (``usage.calibration``): each fixture estimated with what
   the engine reported for two warm-up requests (one plain, one with a tool) and for the fixtures before it, then
   added as a sample: the online learning of a backend's template cost, on the real engine's counts.
3. The engine's own answers: ``completion_tokens`` against ``answer_tokens()`` of the answer it sent. The model has
   random weights, so these answers are strings of arbitrary tokens, far from prose: the worst case for any estimate
   made with another vocabulary, shown for completeness.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.estimates.args import parser
from interlock.gateway.dispatch.apis import API
from interlock.gateway.usage.calibration import PromptCalibration
from interlock.gateway.usage.estimate import answer_tokens, count_text, prompt_estimate

WARM_UP: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": "Hello there, how are you?"}]},
    {
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }}],
    },
]  # fmt: skip

TESTDATA = Path(__file__).resolve().parents[2] / "tests" / "testdata" / "translate"


def _requests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for pattern in ("openai_anthropic/*/request.json", "anthropic_openai/*/upstream_request.json"):
        for path in sorted(TESTDATA.glob(pattern)):
            request = orjson.loads(path.read_bytes())
            found.append((f"{path.parent.parent.name}/{path.parent.name}", request))
    return found


def _answers() -> list[tuple[str, str]]:
    found = []
    for path in sorted(TESTDATA.glob("openai_anthropic/*/response.json")):
        answer = orjson.loads(path.read_bytes())
        for choice in answer.get("choices") or ():
            content = (choice.get("message") or {}).get("content")
            if isinstance(content, str) and content:
                found.append((path.parent.name, content))
    return found


def _error(estimate: int, real: int) -> float:
    return (estimate - real) / real if real else 0.0


def _table(title: str, rows: list[tuple[str, int, int]]) -> None:
    print(f"\n### {title}\n")
    print("| fixture | engine | estimate | error |")
    print("|---|---:|---:|---:|")
    for name, real, estimate in rows:
        print(f"| {name} | {real} | {estimate} | {_error(estimate, real):+.1%} |")
    if rows:
        errors = [abs(_error(e, r)) for _, r, e in rows]
        total_real = sum(r for _, r, _ in rows)
        total_estimate = sum(e for _, _, e in rows)
        print(
            f"\n{len(rows)} fixtures: mean absolute error {statistics.fmean(errors):.1%}, worst {max(errors):.1%}, "
            f"in total {total_estimate} estimated for {total_real} ({_error(total_estimate, total_real):+.1%})."
        )


async def _stream_has_usage(client: httpx.AsyncClient, include_usage: bool) -> bool:
    request: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    request["stream"] = True
    if include_usage:
        request["stream_options"] = {"include_usage": True}
    async with client.stream("POST", "/v1/chat/completions", json=request) as response:
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    return b'"usage":{' in body.replace(b" ", b"")


async def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.server:
        print("python -m bench.estimates: give --server (bench/estimates/llamacpp starts one)", file=sys.stderr)
        return 2
    prompts: list[tuple[str, int, int]] = []
    calibrated: list[tuple[str, int, int]] = []
    calibration = PromptCalibration()
    engine_answers: list[tuple[str, int, int]] = []
    refused: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=args.server.rstrip("/"), timeout=300) as client:
        props = (await client.get("/props")).json()
        print(f"llama.cpp build {props.get('build_info', '?')}, model {props.get('model_path', '?')}")
        print(
            f"a stream reports usage: with stream_options.include_usage {await _stream_has_usage(client, True)}, "
            f"without {await _stream_has_usage(client, False)}"
        )
        warm_up = [(f"warm-up {i}", request) for i, request in enumerate(WARM_UP)]
        for name, request in warm_up + _requests():
            body = {k: v for k, v in request.items() if k not in ("stream", "stream_options", "model")}
            body |= {"model": "m", "max_tokens": args.max_tokens, "temperature": 0}
            response = await client.post("/v1/chat/completions", json=body)
            if response.status_code != 200:
                refused.append((name, response.text[:120].replace("|", "/")))
                continue
            answer = response.json()
            usage = answer["usage"]
            estimate, shape = prompt_estimate(API.CHAT, request)
            if not name.startswith("warm-up"):
                prompts.append((name, usage["prompt_tokens"], estimate))
                corrected = estimate + calibration.correction("m", shape)
                calibrated.append((name, usage["prompt_tokens"], corrected))
                engine_answers.append((name, usage["completion_tokens"], answer_tokens(answer)))
            calibration.add("m", shape, estimate, usage["prompt_tokens"])
        texts = []
        for name, text in _answers():
            tokens = (await client.post("/tokenize", json={"content": text, "add_special": False})).json()["tokens"]
            texts.append((name, len(tokens), count_text(text)))
    _table("Prompts: the engine's prompt_tokens against prompt_tokens()", prompts)
    _table(
        "Prompts corrected by the backend's calibration (learned from the warm-up and the fixtures before each)",
        calibrated,
    )
    if refused:
        print("\nRefused by the engine (not counted): " + "; ".join(f"{n}: {why}" for n, why in refused))
    _table("Natural answer texts: the engine's /tokenize against count_text()", texts)
    _table("The random model's own answers: completion_tokens against answer_tokens()", engine_answers)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Tool calls, shared by both APIs: which tools to call, and arguments that validate against their schemas.

Two tools are called at once when parallel calls are allowed, several tools are offered, no single tool is forced,
and the last user message says "parallel" or "both". A call's id is a hash of the prompt, its position and the
tool's name, so a streamed answer and a unary one carry the same ids; only the prefix differs between the APIs
(``call_`` for OpenAI, ``toolu_`` for Anthropic).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from interlock.mockprovider.answers import seed_of
from interlock.mockprovider.errors import MockError
from interlock.mockprovider.schema_instances import instance_for
from interlock.mockprovider.settings import MockSettings
from interlock.mockprovider.tokens import split_pieces

__all__ = ["Tool", "ToolCall", "instance_json", "make_tool_calls"]

_PARALLEL = re.compile(r"\b(parallel|both)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    parameters: dict[str, Any]  # a JSON Schema
    description: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text
    fragments: tuple[str, ...]  # what a stream sends, concatenating to ``arguments``


def make_tool_calls(
    tools: Sequence[Tool],
    user_text: str,
    settings: MockSettings,
    *,
    forced: str | None,
    parallel_allowed: bool,
    id_prefix: str,
) -> tuple[ToolCall, ...]:
    chosen: list[Tool]
    if forced is not None:
        chosen = [t for t in tools if t.name == forced]
    elif parallel_allowed and len(tools) > 1 and _PARALLEL.search(user_text):
        chosen = list(tools[:2])
    else:
        chosen = [tools[0]]
    seed = seed_of(user_text)
    return tuple(_tool_call(tool, seed, index, settings, id_prefix) for index, tool in enumerate(chosen))


def instance_json(schema: Any, param: str) -> str:
    """An instance of ``schema`` as compact JSON text; a malformed schema is the client's error (400)."""
    try:
        return orjson.dumps(instance_for(schema)).decode()
    except (TypeError, ValueError, RecursionError) as exc:  # e.g. "minimum": "one"
        raise MockError(400, f"Invalid JSON schema in '{param}': {exc}", param=param, code="invalid_value") from exc


def _tool_call(tool: Tool, seed: int, index: int, settings: MockSettings, id_prefix: str) -> ToolCall:
    arguments = instance_json(tool.parameters, "tools")
    call_id = id_prefix + hashlib.blake2b(f"{seed}:{index}:{tool.name}".encode(), digest_size=12).hexdigest()
    pieces = split_pieces(arguments)
    groups = settings.stream_chunks or max(1, (len(pieces) + 3) // 4)
    return ToolCall(call_id, tool.name, arguments, _regroup(pieces, groups))


def _regroup(pieces: list[str], groups: int) -> tuple[str, ...]:
    """``pieces`` joined into at most ``groups`` consecutive fragments of near-equal size."""
    groups = max(1, min(groups, len(pieces)))
    size, extra = divmod(len(pieces), groups)
    fragments = []
    start = 0
    for index in range(groups):
        end = start + size + (1 if index < extra else 0)
        fragments.append("".join(pieces[start:end]))
        start = end
    return tuple(fragments)

"""OpenAI Chat Completions in, Anthropic Messages out.

Request, mapped:
- ``system`` and ``developer`` messages, wherever they stand, become ``system`` (a string for one text, a list of
  text blocks for several); ``user``/``assistant`` turns stay in order, and adjacent turns of the same role are
  merged (Anthropic requires alternation), with ``tool_result`` blocks first in a merged user turn.
- Content parts: ``text``; ``image_url`` (a ``data:`` URL becomes a base64 ``image`` source with its media type, an
  http(s) URL a ``url`` source; ``detail`` is dropped); ``file`` with PDF ``file_data`` becomes a ``document``.
  Blank text parts are dropped, because Anthropic rejects empty text blocks.
- Assistant ``tool_calls`` become ``tool_use`` blocks (``arguments`` parsed; invalid JSON is a ``ValueError``);
  ``role: tool`` messages become ``tool_result`` blocks in a user turn. Tool-call ids are kept, with characters
  Anthropic refuses (anything but letters, digits, ``_`` and ``-``) replaced by ``_`` on both sides of the pair.
- ``tools`` (functions) become ``{name, description, input_schema}``; ``tool_choice`` ``auto``/``none``/
  ``required``/named becomes ``auto``/``none``/``any``/``{type: tool}``; ``parallel_tool_calls: false`` becomes
  ``disable_parallel_tool_use: true``.
- ``response_format``: ``json_schema`` becomes a forced tool (see ``structured_output``, which overrides the
  client's ``tool_choice``); ``json_object`` adds ``JSON_OBJECT_INSTRUCTION`` to the system prompt.
- ``stop`` becomes ``stop_sequences``; ``max_completion_tokens`` (else ``max_tokens``, else
  ``DEFAULT_MAX_TOKENS``) becomes ``max_tokens``; ``temperature`` is clamped to 0..1; ``top_p`` is
  kept only without ``temperature`` (recent Claude models refuse both at once); ``user`` becomes
  ``metadata.user_id``; ``stream`` is kept.
- ``reasoning_effort`` becomes ``thinking: {type: enabled, budget_tokens: THINKING_BUDGETS[effort]}`` (``none``
  means no thinking). Anthropic counts thinking inside ``max_tokens`` and wants the budget below it, so when
  ``max_tokens`` is not above the budget the budget is added to it. With thinking, ``temperature`` and ``top_p``
  are dropped (Anthropic refuses them), and a forced tool choice is a ``ValueError`` (Anthropic refuses that too).

Dropped silently: ``frequency_penalty``, ``presence_penalty``, ``seed``, ``logit_bias``, ``top_logprobs``,
``stream_options``, ``store``, ``metadata``, ``service_tier``, ``prediction``, ``prompt_cache_key``,
``verbosity``, message ``name`` fields, a function's ``strict`` flag, ``tool_choice`` and
``parallel_tool_calls`` without tools, and any field not named here.

Rejected with ``ValueError`` ("... not supported by the anthropic provider", a 400 for the client): ``n`` > 1,
``logprobs: true``, audio (``modalities`` with audio, ``input_audio`` parts), the legacy ``functions`` /
``function_call``, non-function tools and the ``allowed_tools`` tool choice, file parts other than PDF data.

Response: text blocks are joined into ``content`` (null when there are none); ``tool_use`` blocks become
``tool_calls``; the structured-output tool's input becomes the JSON ``content`` with ``finish_reason: stop``;
``thinking`` blocks become the non-standard ``message.reasoning_content`` (signatures and ``redacted_thinking``
are dropped, so a thinking conversation cannot be continued across tool calls through this crossing); see
``stop_reasons`` and ``anthropic_usage`` for the rest. ``created`` is 0: Anthropic does not send a time.
"""

from __future__ import annotations

import json
from typing import Any

from interlock.gateway.translate.anthropic_usage import openai_usage
from interlock.gateway.translate.openai_anthropic_messages import conversation, text_block
from interlock.gateway.translate.openai_anthropic_stream import StreamTranslator
from interlock.gateway.translate.stop_reasons import finish_reason
from interlock.gateway.translate.structured_output import schema_tool, schema_tool_name
from interlock.gateway.usage.metering import usage_from_anthropic

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "JSON_OBJECT_INSTRUCTION",
    "THINKING_BUDGETS",
    "StreamTranslator",
    "translate_request",
    "translate_response",
]

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` when the client sets none: Anthropic requires it, OpenAI does not."""

THINKING_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 1024,
    "medium": 2048,
    "high": 4096,
    "xhigh": 8192,
    "max": 16384,
}
"""``thinking.budget_tokens`` per ``reasoning_effort``; 1024 is Anthropic's minimum."""

JSON_OBJECT_INSTRUCTION = "Respond with a single JSON object and nothing else: no prose, no code fences."

_UNSUPPORTED = "not supported by the anthropic provider"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------- request


def translate_request(request: dict[str, Any]) -> dict[str, Any]:
    """The client's chat-completions body as an Anthropic Messages body; ``ValueError`` for what cannot map."""
    if not isinstance(request, dict):
        raise ValueError("the request body must be a JSON object")
    _reject_unsupported(request)
    system, messages = conversation(request.get("messages"))
    out: dict[str, Any] = {"messages": messages, "max_tokens": _max_tokens(request)}
    if "model" in request:
        out["model"] = request["model"]
    response_format = request.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        system.append(text_block(JSON_OBJECT_INSTRUCTION))
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    tools, tool_choice = _tools(request)
    if tools:
        out["tools"] = tools
    if tool_choice:
        out["tool_choice"] = tool_choice
    _sampling(request, out)
    stop = request.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        if not all(isinstance(item, str) for item in stop):
            raise ValueError("stop must be a string or a list of strings")
        out["stop_sequences"] = list(stop)
    elif stop is not None and stop != []:
        raise ValueError("stop must be a string or a list of strings")
    user = request.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if request.get("stream") is not None:
        out["stream"] = bool(request["stream"])
    return out


def _reject_unsupported(request: dict[str, Any]) -> None:
    n = request.get("n")
    if n is not None and n != 1:
        raise ValueError(f"n > 1 is {_UNSUPPORTED}")
    if request.get("logprobs") is True:
        raise ValueError(f"logprobs is {_UNSUPPORTED}")
    if request.get("functions") is not None or request.get("function_call") is not None:
        raise ValueError(f"the legacy functions/function_call fields are {_UNSUPPORTED}; use tools and tool_choice")
    modalities = request.get("modalities")
    if request.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise ValueError(f"audio output is {_UNSUPPORTED}")


def _max_tokens(request: dict[str, Any]) -> int:
    for field in ("max_completion_tokens", "max_tokens"):
        value = request.get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{field} must be a positive integer")
        return value
    return DEFAULT_MAX_TOKENS


def _number(request: dict[str, Any], field: str) -> float | None:
    value = request.get(field)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{field} must be a number")
    return value


def _sampling(request: dict[str, Any], out: dict[str, Any]) -> None:
    """``temperature``/``top_p``, or ``thinking`` (which excludes them and forced tools)."""
    temperature = _number(request, "temperature")
    top_p = _number(request, "top_p")
    effort = request.get("reasoning_effort")
    if effort is not None and effort != "none":
        if effort not in THINKING_BUDGETS:
            raise ValueError(f"reasoning_effort must be one of none, {', '.join(THINKING_BUDGETS)}")
        choice = out.get("tool_choice") or {}
        if choice.get("type") in ("any", "tool"):
            raise ValueError(
                f"reasoning_effort with a forced tool (tool_choice required or named, or response_format "
                f"json_schema) is {_UNSUPPORTED}"
            )
        budget = THINKING_BUDGETS[effort]
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if out["max_tokens"] <= budget:
            out["max_tokens"] += budget
        return
    if temperature is not None:
        out["temperature"] = min(max(temperature, 0.0), 1.0)
    elif top_p is not None:
        out["top_p"] = top_p


def _tools(request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    raw = request.get("tools")
    if raw is not None and not isinstance(raw, list):
        raise ValueError("tools must be a list")
    tools = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(raw or [])]
    forced = schema_tool(request)
    if forced is not None:
        if any(tool["name"] == forced["name"] for tool in tools):
            raise ValueError(f"response_format.json_schema.name {forced['name']!r} is also the name of a tool")
        return [*tools, forced], {"type": "tool", "name": forced["name"]}
    if not tools:
        return [], None
    choice = _tool_choice(request.get("tool_choice"))
    if request.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return tools, choice


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise ValueError(f"{where}: tools of type {kind!r} are {_UNSUPPORTED}")
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError(f"{where}.function must be an object with a name")
    parameters = function.get("parameters")
    out: dict[str, Any] = {
        "name": function["name"],
        "input_schema": parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}},
    }
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return {"type": "tool", "name": function["name"]}
        raise ValueError("tool_choice.function must name a function")
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise ValueError(f"tool_choice {kind!r} is {_UNSUPPORTED}")


# --------------------------------------------------------------------------------------------------- response


def translate_response(response: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic message as a chat completion, for the client's ``request``."""
    forced = schema_tool_name(request)
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    structured: str | None = None
    for block in response.get("content") or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
        elif kind == "tool_use":
            tool_input = block.get("input") if block.get("input") is not None else {}
            if structured is None and forced is not None and block.get("name") == forced:
                structured = _dumps(tool_input)
                continue
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": _dumps(tool_input)},
                }
            )
    content = structured if structured is not None else "".join(texts) if texts else None
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    finish = finish_reason(response.get("stop_reason"))
    if finish == "tool_calls" and not calls:
        finish = "stop"
    out: dict[str, Any] = {
        "id": response.get("id"),
        "object": "chat.completion",
        "created": 0,
        "model": response.get("model", request.get("model")),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
    }
    usage = usage_from_anthropic(response.get("usage"))
    if usage is not None:
        out["usage"] = openai_usage(usage)
    return out

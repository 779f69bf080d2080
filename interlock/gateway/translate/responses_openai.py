"""OpenAI Responses API in (``POST /v1/responses``), OpenAI Chat Completions out: the stateless subset.

Request (``translate_request``):

- ``instructions`` → a leading ``system`` message; ``input`` as a string → one ``user`` message.
- ``input`` items: messages (``role`` ``user``/``system``/``developer``/``assistant``, ``type`` ``message`` or
  omitted) with string content or parts: ``input_text`` → ``text``, ``input_image`` (URL or data URL) →
  ``image_url`` (``detail`` kept); assistant ``output_text`` (and ``input_text``) parts → one content string,
  ``refusal`` parts → ``refusal``. ``developer`` becomes ``system``, which every chat server understands.
  ``function_call`` → an assistant ``tool_calls`` entry (``call_id`` is the tool call id), merged into the
  assistant message right before it, so text and calls of one turn stay one chat message.
  ``function_call_output`` → a ``tool`` message (string output, or ``input_text`` parts as text parts).
  ``reasoning`` items are dropped: their content is private to the model that made them.
- ``tools`` (function tools, flat) → chat ``tools`` nested under ``function``, ``strict`` kept when given
  (the Responses API's strict-by-default schema normalisation is not emulated); ``tool_choice``
  ``auto``/``none``/``required``/``{type: function, name}``; ``parallel_tool_calls``.
- ``text.format``: ``json_schema`` → ``response_format.json_schema`` (``name``, ``schema``, ``strict``,
  ``description``), ``json_object`` → ``json_object``, ``text`` → nothing.
- ``max_output_tokens`` → ``max_tokens`` (not ``max_completion_tokens``: vLLM and most OpenAI-compatible
  servers read ``max_tokens``); ``temperature``, ``top_p``; ``user`` (else ``safety_identifier``) → ``user``;
  ``reasoning.effort`` → ``reasoning_effort``; ``stream`` → ``stream`` with ``stream_options.include_usage``.
- Accepted and ignored: ``store`` (this gateway never stores a response, whatever ``store`` says, and the
  response cannot be fetched later), ``metadata`` (echoed in the response only), ``include``, ``truncation``,
  ``service_tier``, ``prompt_cache_key``, ``top_logprobs``, ``max_tool_calls``, ``stream_options``,
  ``text.verbosity``, ``reasoning.summary``, and fields this module does not know.

Refused with ``UnsupportedFeature`` (the gateway answers 400): ``previous_response_id``, ``conversation``,
``prompt`` and ``background: true`` (all need server-side state); tools other than ``function``
(``web_search*``, ``file_search``, ``code_interpreter``, ``computer*``, ``image_generation``, ``mcp``,
``local_shell``, ``shell``, ``custom``, ...); ``tool_choice`` other than the above (``allowed_tools``, hosted
tools); input items other than messages, ``function_call``, ``function_call_output`` and ``reasoning``
(``item_reference``, hosted tool calls, ...); content parts other than the above (``input_file``,
``input_audio``, images by ``file_id``, images outside user messages); malformed input.

Response (``translate_response``): ``resp_<id>`` with ``created_at`` from the upstream ``created``; the output
holds the assistant ``message`` (``msg_<id>``: an ``output_text`` part, and a ``refusal`` part when the
upstream refused), then one ``function_call`` item per tool call (``fc_<call id>``); ``finish_reason``
``length`` → ``status: incomplete`` with ``incomplete_details.reason: max_output_tokens`` (``content_filter``
likewise); usage as ``input_tokens``/``output_tokens``/``total_tokens`` with cached and reasoning token
details. Request parameters are echoed as the Responses API does. Streaming: ``responses_openai_stream``.
"""

from __future__ import annotations

from typing import Any

from interlock.gateway.translate.responses_openai_stream import (
    StreamTranslator,
    function_call_item,
    message_item,
    outcome,
    response_object,
    response_usage,
)

__all__ = ["StreamTranslator", "UnsupportedFeature", "translate_request", "translate_response"]


class UnsupportedFeature(ValueError):
    """The request asks for something this stateless translation cannot express, or is malformed.

    The gateway answers 400 with ``str(exc)`` as the message and ``param`` (the request field at fault, as
    OpenAI names it, e.g. ``input[2].type``) in the error envelope.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


_STATEFUL = {
    "previous_response_id": "previous_response_id is not supported: this gateway is stateless; "
    "send the full conversation in input",
    "conversation": "conversation is not supported: this gateway is stateless; send the full conversation in input",
    "prompt": "prompt (stored prompt templates) is not supported: send instructions and input instead",
}
_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _is_set(value: Any) -> bool:
    return value is not None


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise UnsupportedFeature(f"{param} must be a string", param)
    return value


def translate_request(request: dict[str, Any]) -> dict[str, Any]:
    """The Responses API request as a chat completions request; raises ``UnsupportedFeature``."""
    for key, message in _STATEFUL.items():
        if _is_set(request.get(key)):
            raise UnsupportedFeature(message, key)
    if request.get("background"):
        raise UnsupportedFeature("background is not supported: this gateway answers in the request", "background")

    messages: list[dict[str, Any]] = []
    if _is_set(request.get("instructions")):
        messages.append({"role": "system", "content": _text(request["instructions"], "instructions")})
    items = request.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for index, item in enumerate(items):
            _add_item(messages, item, f"input[{index}]")
    elif _is_set(items):
        raise UnsupportedFeature("input must be a string or a list of items", "input")
    if not messages:
        raise UnsupportedFeature("input is required and must hold a message: this gateway is stateless", "input")

    out: dict[str, Any] = {}
    if "model" in request:
        out["model"] = request["model"]
    out["messages"] = messages
    tools = request.get("tools")
    if _is_set(tools):
        if not isinstance(tools, list):
            raise UnsupportedFeature("tools must be a list", "tools")
        if tools:
            out["tools"] = [_tool(tool, f"tools[{index}]") for index, tool in enumerate(tools)]
    if _is_set(request.get("tool_choice")):
        out["tool_choice"] = _tool_choice(request["tool_choice"])
    if isinstance(request.get("parallel_tool_calls"), bool):
        out["parallel_tool_calls"] = request["parallel_tool_calls"]
    response_format = _response_format(request.get("text"))
    if response_format is not None:
        out["response_format"] = response_format
    for source, target in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p")):
        if _is_set(request.get(source)):
            out[target] = request[source]
    user = request.get("user") if _is_set(request.get("user")) else request.get("safety_identifier")
    if _is_set(user):
        out["user"] = user
    reasoning = request.get("reasoning")
    if isinstance(reasoning, dict) and _is_set(reasoning.get("effort")):
        out["reasoning_effort"] = reasoning["effort"]
    if request.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _add_item(messages: list[dict[str, Any]], item: Any, param: str) -> None:
    if not isinstance(item, dict):
        raise UnsupportedFeature(f"{param} must be an object", param)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        messages.append(_message(item, param))
    elif kind == "function_call":
        call = {
            "id": _text(item.get("call_id"), f"{param}.call_id"),
            "type": "function",
            "function": {
                "name": _text(item.get("name"), f"{param}.name"),
                "arguments": _text(item.get("arguments"), f"{param}.arguments"),
            },
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        call_id = _text(item.get("call_id"), f"{param}.call_id")
        messages.append({"role": "tool", "tool_call_id": call_id, "content": _tool_output(item.get("output"), param)})
    elif kind != "reasoning":
        raise UnsupportedFeature(f"input item type {kind!r} is not supported", f"{param}.type")


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise UnsupportedFeature(f"message role {item.get('role')!r} is not supported", f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise UnsupportedFeature("message content must be a string or a list of parts", f"{param}.content")
    if role == "assistant":
        return _assistant(content, f"{param}.content")
    parts = []
    for index, part in enumerate(content):
        parts.append(_input_part(part, role, f"{param}.content[{index}]"))
    return {"role": role, "content": parts}


def _part_type(part: Any, param: str) -> str:
    if not isinstance(part, dict):
        raise UnsupportedFeature(f"{param} must be an object", param)
    return str(part.get("type"))


def _input_part(part: Any, role: str, param: str) -> dict[str, Any]:
    kind = _part_type(part, param)
    if kind == "input_text":
        return {"type": "text", "text": _text(part.get("text"), f"{param}.text")}
    if kind == "input_image" and role == "user":
        if not isinstance(part.get("image_url"), str):
            raise UnsupportedFeature("input_image needs image_url (a URL or data URL); file_id is not supported", param)
        image: dict[str, Any] = {"url": part["image_url"]}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_image":
        raise UnsupportedFeature(f"input_image is only supported in user messages, not {role}", param)
    raise UnsupportedFeature(f"content type {kind!r} is not supported", f"{param}.type")


def _assistant(content: list[Any], param: str) -> dict[str, Any]:
    texts: list[str] = []
    refusals: list[str] = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        kind = _part_type(part, where)
        if kind in ("output_text", "input_text"):
            texts.append(_text(part.get("text"), f"{where}.text"))
        elif kind == "refusal":
            refusals.append(_text(part.get("refusal"), f"{where}.refusal"))
        else:
            raise UnsupportedFeature(f"assistant content type {kind!r} is not supported", f"{where}.type")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if refusals:
        message["refusal"] = "".join(refusals)
    return message


def _tool_output(output: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise UnsupportedFeature("function_call_output output must be a string or a list of parts", f"{param}.output")
    parts = []
    for index, part in enumerate(output):
        where = f"{param}.output[{index}]"
        kind = _part_type(part, where)
        if kind != "input_text":
            raise UnsupportedFeature(f"function_call_output content type {kind!r} is not supported", f"{where}.type")
        parts.append({"type": "text", "text": _text(part.get("text"), f"{where}.text")})
    return parts


def _tool(tool: Any, param: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise UnsupportedFeature(f"{param} must be an object", param)
    if tool.get("type") != "function":
        raise UnsupportedFeature(
            f"tool type {tool.get('type')!r} is not supported: this gateway offers function tools only",
            f"{param}.type",
        )
    function: dict[str, Any] = {"name": _text(tool.get("name"), f"{param}.name")}
    for key in ("description", "parameters", "strict"):
        if _is_set(tool.get(key)):
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": _text(choice.get("name"), "tool_choice.name")}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise UnsupportedFeature(f"tool_choice {kind!r} is not supported", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    if not _is_set(text):
        return None
    if not isinstance(text, dict):
        raise UnsupportedFeature("text must be an object", "text")
    if not _is_set(text.get("format")):
        return None
    fmt = _as_dict(text["format"])
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise UnsupportedFeature(f"text.format type {kind!r} is not supported", "text.format.type")
    schema: dict[str, Any] = {"name": _text(fmt.get("name"), "text.format.name")}
    for key in ("description", "schema", "strict"):
        if _is_set(fmt.get(key)):
            schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": schema}


def translate_response(response: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A chat completion as a Responses API ``response`` object (first choice; ``request`` is the client's)."""
    upstream_id = _as_str(response.get("id"), "upstream")
    choices = response.get("choices")
    choice = _as_dict(choices[0]) if isinstance(choices, list) and choices else {}
    message = _as_dict(choice.get("message"))
    status, details = outcome(choice.get("finish_reason"))
    item_status = "incomplete" if status == "incomplete" else "completed"

    parts = [(kind, _as_str(message.get(key))) for kind, key in (("output_text", "content"), ("refusal", "refusal"))]
    parts = [(kind, text) for kind, text in parts if text]
    calls = []
    tool_calls = message.get("tool_calls")
    for index, call in enumerate(tool_calls if isinstance(tool_calls, list) else []):
        function = _as_dict(_as_dict(call).get("function"))
        call_id = _as_str(_as_dict(call).get("id"), f"call_{upstream_id}_{index}")
        name, arguments = _as_str(function.get("name")), _as_str(function.get("arguments"))
        calls.append(function_call_item(call_id, name, arguments, item_status))
    output = []
    if parts or not calls:
        output.append(message_item(f"msg_{upstream_id}", parts or [("output_text", "")], item_status))
    output.extend(calls)
    return response_object(
        request,
        response_id=f"resp_{upstream_id}",
        created_at=response.get("created"),
        model=response.get("model"),
        status=status,
        output=output,
        usage=response_usage(response.get("usage")),
        incomplete_details=details,
    )

"""``POST /v1/embeddings``: unit vectors seeded by a hash of each input.

The vector of an input at dimension d is the first d components of its vector at any larger dimension,
renormalised, like models trained for shortened embeddings. ``encoding_format: "base64"`` (what the openai SDK
asks for by default) carries little-endian float32; the float form gives the same float32 values.
"""

from __future__ import annotations

import base64
import hashlib
import math
import sys
from array import array
from typing import Any

import orjson

from interlock.mockprovider.errors import MockError
from interlock.mockprovider.tokens import count_tokens

__all__ = ["embed", "embeddings_body"]

_MAX_DIM = 65536


def embed(key: bytes, dim: int) -> array[float]:
    """A deterministic unit vector of float32 for ``key``."""
    raw = array("I", hashlib.shake_256(key).digest(4 * dim))
    values = [x / 2147483648.0 - 1.0 for x in raw]
    norm = math.sqrt(math.fsum(v * v for v in values)) or 1.0
    return array("f", [v / norm for v in values])


def _inputs(value: Any) -> list[tuple[bytes, int]]:
    """Each input as (hash key, token count)."""
    if isinstance(value, str):
        return [(value.encode(), count_tokens(value))]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return [(v.encode(), count_tokens(v)) for v in value]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [(orjson.dumps(value), len(value))]
        if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
            return [(orjson.dumps(v), len(v)) for v in value]
    raise MockError(
        400,
        "Invalid 'input': expected a string, an array of strings, or an array of token arrays (non-empty).",
        param="input",
        code="invalid_value",
    )


def embeddings_body(body: Any, default_dim: int, *, with_usage: bool = True) -> bytes:
    if not isinstance(body, dict):
        raise MockError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise MockError(400, "You must provide a model parameter.", param="model", code="missing_required_parameter")
    inputs = _inputs(body.get("input"))
    dim = body.get("dimensions")
    if dim is None:
        dim = default_dim
    elif not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= _MAX_DIM:
        raise MockError(400, f"Invalid 'dimensions': {dim!r}.", param="dimensions", code="invalid_value")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise MockError(400, f"Invalid 'encoding_format': {encoding!r}.", param="encoding_format", code="invalid_value")
    data = []
    for index, (key, _) in enumerate(inputs):
        vector = embed(key, dim)
        embedding: Any
        if encoding == "base64":
            if sys.byteorder == "big":
                vector.byteswap()
            embedding = base64.b64encode(vector.tobytes()).decode()
        else:
            embedding = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    result: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if with_usage:
        tokens = sum(count for _, count in inputs)
        result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(result)

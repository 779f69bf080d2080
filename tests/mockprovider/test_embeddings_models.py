"""Embeddings and models through the openai SDK, and the optional API key."""

from __future__ import annotations

import base64
import math
from array import array

import openai
import pytest

from tests.mockprovider.served import Serve, Served

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_sdk_embeddings_are_unit_float_vectors(mock: Served) -> None:
    # The SDK asks for base64 unless told otherwise and decodes it; both forms must agree.
    result = await mock.client.embeddings.create(model="mock-embed", input=["alpha", "beta"])
    floats = await mock.client.embeddings.create(model="mock-embed", input="alpha", encoding_format="float")
    assert result.model == "mock-embed"
    assert [d.index for d in result.data] == [0, 1]
    first = result.data[0].embedding
    assert len(first) == 256
    assert all(isinstance(x, float) for x in first)
    assert math.isclose(math.fsum(x * x for x in first), 1.0, rel_tol=1e-5)
    assert first == floats.data[0].embedding
    assert first != result.data[1].embedding
    assert result.usage.prompt_tokens == 2
    assert result.usage.total_tokens == 2


async def test_embeddings_dimensions_and_token_inputs(mock: Served) -> None:
    short = await mock.client.embeddings.create(model="e", input="alpha", dimensions=64, encoding_format="float")
    assert len(short.data[0].embedding) == 64
    tokens = await mock.client.embeddings.create(model="e", input=[[1, 2, 3], [4, 5]], encoding_format="float")
    assert len(tokens.data) == 2
    assert tokens.usage.prompt_tokens == 5


async def test_raw_base64_is_little_endian_float32(mock: Served) -> None:
    body = {"model": "e", "input": "alpha", "encoding_format": "base64", "dimensions": 8}
    encoded = (await mock.http.post("/v1/embeddings", json=body)).json()["data"][0]["embedding"]
    decoded = array("f", base64.b64decode(encoded))
    floats = (await mock.http.post("/v1/embeddings", json={**body, "encoding_format": "float"})).json()
    assert decoded.tolist() == floats["data"][0]["embedding"]


@pytest.mark.parametrize("bad", [{"input": []}, {"input": 3}, {"input": "a", "dimensions": 0}, {"input": [True]}])
async def test_bad_embedding_requests_are_400(mock: Served, bad: dict[str, object]) -> None:
    response = await mock.http.post("/v1/embeddings", json={"model": "e", **bad})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_models_list_and_retrieve(mock: Served) -> None:
    listed = [model.id async for model in mock.client.models.list()]
    assert listed == ["mock-small", "mock-large", "mock-embed"]
    model = await mock.client.models.retrieve("mock-large")
    assert model.id == "mock-large"
    with pytest.raises(openai.NotFoundError):
        await mock.client.models.retrieve("nope")


async def test_api_key_is_enforced_when_set(serve: Serve) -> None:
    wrong = await serve(api_key="sk-backend", client_key="sk-other")
    with pytest.raises(openai.AuthenticationError) as caught:
        await wrong.client.models.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    right = openai.AsyncOpenAI(base_url=f"{wrong.root}/v1", api_key="sk-backend", max_retries=0)
    async with right:
        reply = await right.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    assert wrong.provider.stats.last is not None
    assert wrong.provider.stats.last.headers["authorization"] == "Bearer sk-backend"
    assert (await wrong.http.get("/_mock/stats")).status_code == 200

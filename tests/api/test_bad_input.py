"""Garbage to every endpoint: wrong types, unknown ids, hostile strings, oversize values and pages. Each answer is
a 4xx with a JSON ``detail`` (or a success for harmless input), never a 500."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.api.support import event, new_key, new_tenant, post_usage

PATH_VALUES = ["unknown", "%00", "x" * 300, "..%2F..", "%27%20OR%201%3D1", "%E2%98%83", "-1", "%20"]
BODIES: list[Any] = [
    b"not json",
    b"",
    b"null",
    b"[]",
    b'{"name": 5}',
    b'{"name": "a\\u0000b"}',
    b'{"name": "' + b"n" * 5000 + b'"}',
    b'{"name": "ok", "extra": 1}',
    b'{"requests_per_minute": 1e400}',
    b'{"requests_per_minute": 99999999999999999999999}',
    b'{"monthly_budget_usd": NaN}',
    b'{"monthly_budget_usd": "Infinity"}',
    b'{"input_per_million": -1, "output_per_million": "x", "backend": "", "model": null}',
    b'{"expires_at": "0001-01-01T00:00:00+05:00", "name": "k"}',
    b'{"expires_at": "yesterday", "name": "k"}',
    b'{"events": "nope"}',
    b'{"events": [{"idempotency_id": "short"}]}',
    b"[" * 5000 + b"]" * 5000,
    b"\xff\xfe\x00garbage",
]
QUERIES: list[dict[str, str]] = [
    {"limit": "abc"},
    {"limit": "-1"},
    {"limit": "0"},
    {"limit": "100000000000000000000000000"},
    {"limit": "1001"},
    {"cursor": "!!!"},
    {"cursor": "WyJ0IiwgIm5vcGUiLCAxXQ"},
    {"since": "garbage"},
    {"since": "0001-01-01T00:00:00+05:00"},
    {"until": "9999-12-31T23:59:59-05:00"},
    {"tenant_id": "a\x00b"},
    {"model": "x" * 5000},
    {"group_by": "tenant,nope"},
    {"gateway_id": ""},
    {"gateway_id": "g\x00"},
]


def _assert_clean(response: httpx.Response, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert "detail" in response.json(), (what, response.text[:300])


async def test_garbage_to_every_endpoint(app: FastAPI, admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    key = await new_key(admin, tenant["id"])
    price = (
        await admin.post(
            "/v1/prices", json={"backend": "b", "model": "m", "input_per_million": 1, "output_per_million": 1}
        )
    ).json()
    await post_usage(gateway, [event(tenant["id"], 1, trace_id="t1")])
    real = {"tenant_id": tenant["id"], "key_id": key["id"], "price_id": price["id"], "trace_id": "t1"}
    routes = [(m.upper(), path) for path, operations in app.openapi()["paths"].items() for m in operations]
    assert len(routes) >= 20
    delete_last = sorted(routes, key=lambda mp: mp[0] == "DELETE")

    for method, template in delete_last:
        client = gateway if template.startswith("/v1/gateway/") else admin
        names = [n for n in real if "{" + n + "}" in template]
        for value in PATH_VALUES:  # unknown and hostile ids
            path = template.format(**dict.fromkeys(names, value))
            response = await client.request(method, path, json={})
            _assert_clean(response, (method, path))
            if names and value == "unknown":
                assert response.status_code in (404, 422), (method, path, response.text)
        path = template.format(**real)
        for body in BODIES:
            response = await client.request(method, path, content=body, headers={"content-type": "application/json"})
            _assert_clean(response, (method, path, body[:60]))
            if method in ("POST", "PUT", "PATCH") and body in (b"not json", b"null", b'{"events": "nope"}'):
                assert response.status_code == 422, (method, path, body, response.text)
        for query in QUERIES:
            _assert_clean(await client.request(method, path, params=query), (method, path, query))


async def test_wrong_credentials_are_401_with_a_message(client_for: Any) -> None:
    raw = client_for(None)
    for authorization in [
        None,
        b"Bearer ",
        b"Bearer wrong",
        b"Basic dXNlcjpwYXNz",
        b"Bearer sk-il-" + b"x" * 43,
        "Bearer sk-il-\u00e9t\u00e9-0123456789".encode("latin-1"),
    ]:
        headers = {"authorization": authorization} if authorization is not None else {}
        response = await raw.get("/v1/tenants", headers=headers)
        assert response.status_code == 401, (authorization, response.text)
        assert response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


async def test_the_usage_batch_checks_every_field(admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    tenant = await new_tenant(admin)
    good = event(tenant["id"], 1)
    for field, value in [
        ("seq", 0),
        ("seq", 2**70),
        ("input_tokens", -1),
        ("cost_usd", -0.01),
        ("cost_usd", 1e300),
        ("latency_ms", "fast"),
        ("started_at", "0001-01-01T00:00:00+05:00"),
        ("idempotency_id", "x" * 65),
        ("status", 10_000),
        ("spans", [{"name": "a", "start_ms": 0, "duration_ms": -1}]),
    ]:
        result = await post_usage(gateway, [{**good, field: value}])  # judged alone: rejected, never a 500
        assert result["accepted"] == 0, (field, value, result)
        assert len(result["rejected"]) == 1, (field, value, result)
        assert field in result["rejected"][0]["reason"], (field, result)
    oversize = await gateway.post("/v1/gateway/usage", json={"events": [good] * 5001})
    assert oversize.status_code == 422
    hostile = {
        **good,
        "model": "a\x00b",
        "spans": [{"name": "x", "start_ms": 0, "duration_ms": 1, "attributes": {"k": "\x00"}}],
    }
    assert (await post_usage(gateway, [hostile]))["accepted"] == 1  # kept (NUL replaced), never refused or a 500

"""``python -m interlock.mockprovider`` serves the mock in its own process, driven over the control endpoints."""

from __future__ import annotations

import pytest

from tests.mockprovider.process import mock_process

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_module_serves_the_mock_in_another_process() -> None:
    async with mock_process("--chunk-delay", "0.001", "--stream-chunks", "5", ready_path="/v1/models") as http:
        await http.post("/_mock/faults", json=[{"status": 503, "retry_after": 1}])
        failed = await http.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user"}]})
        assert (failed.status_code, failed.headers["retry-after"]) == (503, "1")
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        streamed = await http.post("/v1/chat/completions", json=body)
        assert streamed.text.count('"content":') == 6  # the role chunk and five pieces
        stats = (await http.get("/_mock/stats")).json()
        assert stats["by_path"] == {"/v1/models": 1, "/v1/chat/completions": 2}

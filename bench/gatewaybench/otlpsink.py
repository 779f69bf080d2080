"""A stand-in OpenTelemetry collector for the benchmark: accepts OTLP/HTTP trace exports, counts the spans.

``python -m gatewaybench.otlpsink --port P``; ``GET /stats`` answers ``{"requests": n, "spans": m}``, so the report
can show that the traced gateways really exported what they recorded.
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["main"]

_EMPTY = ExportTraceServiceResponse().SerializeToString()


class Sink:
    def __init__(self) -> None:
        self.requests = 0
        self.spans = 0

    async def __call__(self, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/v1/traces" and scope["method"] == "POST":
            export = ExportTraceServiceRequest.FromString(body)
            self.requests += 1
            self.spans += sum(len(s.spans) for r in export.resource_spans for s in r.scope_spans)
            payload, content_type = _EMPTY, b"application/x-protobuf"
        else:
            payload = orjson.dumps({"requests": self.requests, "spans": self.spans})
            content_type = b"application/json"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(Sink(), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off", access_log=False)


if __name__ == "__main__":
    main()

"""The three processes under test: the mock upstream, Interlock's gateway and the LiteLLM proxy."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from gatewaybench.configs import CLIENT_KEY, UPSTREAM_KEY, write_gateway_files, write_litellm_files
from gatewaybench.procs import Service, free_port

__all__ = ["Pacing", "gateway_service", "litellm_service", "mock_service", "otlp_sink_service"]


@dataclass(frozen=True)
class Pacing:
    """How the mock upstream streams: ``chunks`` content chunks, ``delay_s`` apart."""

    chunks: int
    delay_s: float


def mock_service(workdir: Path, pacing: Pacing, cores: str) -> Service:
    port = free_port()
    argv = [
        sys.executable, "-m", "interlock.mockprovider", "--port", str(port),
        "--stream-chunks", str(pacing.chunks), "--chunk-delay", str(pacing.delay_s), "--api-key", UPSTREAM_KEY,
    ]  # fmt: skip
    return Service(
        name="mock upstream",
        argv=argv,
        cores=cores,
        base_url=f"http://127.0.0.1:{port}/v1",
        ready_url=f"http://127.0.0.1:{port}/v1/models",
        ready_headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        log_path=workdir / "logs" / "mock.log",
    )


def gateway_service(
    workdir: Path, mock: Service, cores: str, *, name: str = "Interlock", env: dict[str, str | None] | None = None
) -> Service:
    """An ``interlock gateway`` process; ``env`` adds settings (metrics off, ``OTEL_*`` for tracing)."""
    config, secrets = write_gateway_files(workdir / "interlock", mock.base_url)
    port, ops_port = free_port(), free_port()
    argv = [
        sys.executable, "-m", "interlock", "--log-level", "warning",
        "gateway", "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--ops-port", str(ops_port),
    ]  # fmt: skip
    slug = "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())
    return Service(
        name=name,
        argv=argv,
        cores=cores,
        base_url=f"http://127.0.0.1:{port}/v1",
        ready_url=f"http://127.0.0.1:{ops_port}/readyz",  # the ops port
        log_path=workdir / "logs" / f"{slug}.log",
        env={
            "INTERLOCK_GATEWAY_API_KEYS": json.dumps([CLIENT_KEY]),
            "INTERLOCK_GATEWAY_SECRETS_DIR": str(secrets),
            "OTEL_TRACES_EXPORTER": None,
            "OTEL_EXPORTER_OTLP_ENDPOINT": None,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": None,
            **(env or {}),
        },
    )


def otlp_sink_service(workdir: Path, cores: str) -> Service:
    """The stand-in OpenTelemetry collector that the traced gateways export to (``gatewaybench.otlpsink``)."""
    port = free_port()
    return Service(
        name="OTLP sink",
        argv=[sys.executable, "-m", "gatewaybench.otlpsink", "--port", str(port)],
        cores=cores,
        base_url=f"http://127.0.0.1:{port}",
        ready_url=f"http://127.0.0.1:{port}/stats",
        log_path=workdir / "logs" / "otlp-sink.log",
    )


def litellm_service(workdir: Path, mock: Service, litellm_bin: Path, cores: str) -> Service:
    config, log_config = write_litellm_files(workdir / "litellm", mock.base_url)
    port = free_port()
    argv = [
        str(litellm_bin), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
        "--num_workers", "1", "--log_config", str(log_config),
    ]  # fmt: skip
    return Service(
        name="LiteLLM",
        argv=argv,
        cores=cores,
        base_url=f"http://127.0.0.1:{port}/v1",
        ready_url=f"http://127.0.0.1:{port}/v1/models",
        ready_headers={"Authorization": f"Bearer {CLIENT_KEY}"},
        log_path=workdir / "logs" / "litellm.log",
        # Offline and stateless: the bundled price map, no database even if the caller's shell names one.
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "DATABASE_URL": None},
    )

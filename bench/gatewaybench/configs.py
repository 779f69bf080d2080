"""Files the processes under test read: Interlock's compiled GatewayConfig and Secret, LiteLLM's proxy config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from interlock.gatewayconfig import compile_config
from interlock.resources import load_manifests
from interlock.resources.manifests import manifest_files

__all__ = [
    "CLIENT_KEY",
    "MODEL",
    "TRANSLATED_MODEL",
    "UPSTREAM_KEY",
    "UPSTREAM_MODEL",
    "write_gateway_files",
    "write_litellm_files",
]

MODEL = "bench"  # what clients send as "model", to every target but the translated one
TRANSLATED_MODEL = "bench-translated"  # Interlock's route to the same upstream in the Anthropic Messages API
UPSTREAM_MODEL = "bench-upstream"  # what the proxies send upstream
CLIENT_KEY = "sk-bench-client"  # accepted by Interlock and (as master key) by LiteLLM
UPSTREAM_KEY = "sk-bench-upstream"  # required by the mock upstream; the proxies inject it


def _backend_and_route(name: str, provider: str, model: str, upstream_url: str) -> list[dict[str, Any]]:
    meta = {"namespace": "default"}
    return [
        {
            "apiVersion": "interlock.dev/v1alpha1",
            "kind": "LLMBackend",
            "metadata": {"name": name, **meta},
            "spec": {
                "provider": provider,
                "url": upstream_url,
                "credentialsSecretRef": {"name": "upstream", "key": "api-key"},
                "models": [{"name": UPSTREAM_MODEL}],
            },
        },
        {
            "apiVersion": "interlock.dev/v1alpha1",
            "kind": "Route",
            "metadata": {"name": model, **meta},
            "spec": {"model": model, "targets": [{"backend": name, "model": UPSTREAM_MODEL}]},
        },
    ]


def _manifests(upstream_url: str) -> list[dict[str, Any]]:
    """Two routes in one gateway, to the same mock upstream with the same key: ``bench`` passes OpenAI chat
    through; ``bench-translated`` crosses to the mock's Anthropic Messages API (``/v1/messages``) and back."""
    return [
        *_backend_and_route("upstream", "openai", MODEL, upstream_url),
        *_backend_and_route("upstream-anthropic", "anthropic", TRANSLATED_MODEL, upstream_url),
    ]


def write_gateway_files(workdir: Path, upstream_url: str) -> tuple[Path, Path]:
    """Write the manifests, compile them, mount the upstream key as a Secret file; return (config, secrets dir)."""
    manifests = workdir / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / "bench.yaml").write_text(yaml.safe_dump_all(_manifests(upstream_url), sort_keys=False))
    loaded = load_manifests(manifest_files(manifests))
    config = workdir / "gatewayconfig.json"
    config.write_bytes(compile_config(loaded.backends, loaded.routes).to_json())
    secrets = workdir / "secrets"
    (secrets / "upstream").mkdir(parents=True, exist_ok=True)
    (secrets / "upstream" / "api-key").write_text(UPSTREAM_KEY)
    return config, secrets


def write_litellm_files(workdir: Path, upstream_url: str) -> tuple[Path, Path]:
    """LiteLLM proxy config (one model, master key, no database) and a logging config without access logs."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "litellm.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{UPSTREAM_MODEL}",
                            "api_base": upstream_url,
                            "api_key": UPSTREAM_KEY,
                        },
                    }
                ],
                "general_settings": {"master_key": CLIENT_KEY},
                "litellm_settings": {"telemetry": False},
            },
            sort_keys=False,
        )
    )
    # Interlock runs without access logs; give LiteLLM the same courtesy (uvicorn dictConfig).
    log_config = workdir / "litellm-logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
                "loggers": {
                    "uvicorn": {"handlers": ["stderr"], "level": "WARNING"},
                    "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
                },
            }
        )
    )
    return config, log_config

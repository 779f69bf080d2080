"""Inference engines a self-hosted ``LLMBackend`` can run: image, port, health endpoint, command line, cache, the
environment variable of the API key it demands, and its queue-depth metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from interlock.resources.llmbackend import ENGINE_PORTS, Serving, ServingEngine

__all__ = ["ENGINES", "Engine"]


@dataclass(frozen=True)
class Engine:
    """How to run one engine. ``args`` gets the serving spec and the model name routes address."""

    name: str
    image: str
    cpu_image: str
    port: int
    health_path: str
    command: tuple[str, ...]
    cache_dir: str
    cache_env: str
    key_env: str
    """The environment variable the engine reads the API key it demands from."""
    queue_metric: str
    """The engine's Prometheus gauge of requests waiting for a slot (what ``autoscaling.metric: queue`` scales on)."""
    args: Callable[[Serving, str, int], list[str]]

    def image_for(self, serving: Serving) -> str:
        if serving.image:
            return serving.image
        return self.image if serving.gpus > 0 else self.cpu_image


def _vllm_args(serving: Serving, served_name: str, port: int) -> list[str]:
    args = [serving.model, "--served-model-name", served_name, "--host", "0.0.0.0", "--port", str(port)]  # noqa: S104
    if serving.gpus > 0:
        args += ["--tensor-parallel-size", str(serving.gpus)]
    return args


def _tgi_args(serving: Serving, served_name: str, port: int) -> list[str]:
    # TGI answers /v1/chat/completions for whatever model name it is sent, so there is no served-name flag.
    args = ["--model-id", serving.model, "--hostname", "0.0.0.0", "--port", str(port)]  # noqa: S104
    if serving.gpus > 0:
        args += ["--num-shard", str(serving.gpus)]
    return args


def _llamacpp_args(serving: Serving, served_name: str, port: int) -> list[str]:
    # A path loads a GGUF file from the model cache; anything else is a Hugging Face repo (``user/model-GGUF:Q4_K_M``).
    source = ["--model", serving.model] if serving.model.startswith("/") else ["--hf-repo", serving.model]
    args = [*source, "--alias", served_name, "--host", "0.0.0.0", "--port", str(port)]  # noqa: S104
    if serving.gpus > 0:
        args += ["--n-gpu-layers", "999"]  # every layer on the GPUs; llama.cpp splits them across all it sees
    return args


ENGINES: dict[ServingEngine, Engine] = {
    ServingEngine.VLLM: Engine(
        name="vllm",
        image="vllm/vllm-openai:v0.11.0",
        cpu_image="vllm/vllm-openai:v0.11.0",
        port=ENGINE_PORTS[ServingEngine.VLLM],
        health_path="/health",
        command=("vllm", "serve"),
        cache_dir="/models",
        cache_env="HF_HOME",
        key_env="VLLM_API_KEY",
        queue_metric="vllm:num_requests_waiting",
        args=_vllm_args,
    ),
    ServingEngine.TGI: Engine(
        name="tgi",
        image="ghcr.io/huggingface/text-generation-inference:3.3.6",
        cpu_image="ghcr.io/huggingface/text-generation-inference:3.3.6",
        port=ENGINE_PORTS[ServingEngine.TGI],
        health_path="/health",
        command=("text-generation-launcher",),
        cache_dir="/data",
        cache_env="HF_HOME",
        key_env="API_KEY",
        queue_metric="tgi_queue_size",
        args=_tgi_args,
    ),
    ServingEngine.LLAMACPP: Engine(
        name="llamacpp",
        image="ghcr.io/ggml-org/llama.cpp:server-cuda-b6700",
        cpu_image="ghcr.io/ggml-org/llama.cpp:server-b6700",
        port=ENGINE_PORTS[ServingEngine.LLAMACPP],
        health_path="/health",
        command=("/app/llama-server",),
        cache_dir="/models",
        cache_env="LLAMA_CACHE",
        key_env="LLAMA_API_KEY",
        queue_metric="llamacpp:requests_deferred",
        args=_llamacpp_args,
    ),
}

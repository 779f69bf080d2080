"""The arguments of ``bench/estimates/llamacpp``: standard library only (see ``bench/preflight.py``)."""

from __future__ import annotations

import argparse

__all__ = ["parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/estimates/llamacpp",
        description="The usage estimate (the bundled cl100k_base tokenizer) against a real llama.cpp server's own "
        "token counts: llama.cpp built from source, serving a tiny random-weight model with Llama 3's vocabulary "
        "and chat template, on the request fixtures of the translator tests.",
    )
    p.add_argument("--max-tokens", type=int, default=48, help="completion tokens asked of the engine per request")
    p.add_argument("--jobs", type=int, default=2, help="parallel compile jobs for the llama.cpp build")
    p.add_argument("--server", help="use a llama-server already running at this base URL (http://host:port)")
    return p

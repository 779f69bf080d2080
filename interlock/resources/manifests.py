"""Read Kubernetes-style YAML manifests (LLMBackend, Route, Secret) from files, as ``kubectl apply -f`` would."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from interlock.resources.llmbackend import LLMBackend
from interlock.resources.route import Route

__all__ = ["ManifestError", "ManifestSet", "format_validation_error", "load_manifests", "manifest_files"]

_YAML_SUFFIXES = (".yaml", ".yml", ".json")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, the object and the field."""


@dataclass
class ManifestSet:
    """The objects found in a set of manifests. ``secrets`` maps (namespace, name) to decoded string data."""

    backends: list[LLMBackend] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``spec.targets.0.weight: Input should be greater than or equal to 0``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(object)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


def manifest_files(path: Path) -> list[Path]:
    """A file, or every YAML/JSON file under a directory, in a stable order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ManifestError(f"{path}: no such file or directory")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _YAML_SUFFIXES)


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    try:
        docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"{path}: each document must be a mapping, got {type(doc).__name__}")
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from (item for item in doc["items"] if isinstance(item, dict))
        else:
            yield doc


def _secret_data(path: Path, doc: dict[str, Any]) -> dict[str, str]:
    name = doc.get("metadata", {}).get("name", "?")
    out: dict[str, str] = {}
    for key, value in (doc.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ManifestError(f"{path}: Secret {name!r}: data.{key} is not base64-encoded UTF-8") from exc
    out.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return out


def load_manifests(paths: Iterable[Path]) -> ManifestSet:
    """Parse every LLMBackend, Route and Secret in ``paths``; other kinds are ignored, like other tools' objects."""
    result = ManifestSet()
    seen: dict[tuple[str, str, str], Path] = {}
    for path in paths:
        for doc in _documents(path):
            kind = doc.get("kind")
            raw_meta = doc.get("metadata")
            meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
            name = str(meta.get("name", "?"))
            namespace = str(meta.get("namespace") or "default")
            if kind not in ("LLMBackend", "Route", "Secret"):
                continue
            key = (str(kind), namespace, name)
            if key in seen:
                raise ManifestError(f"{path}: {kind} {namespace}/{name} is also defined in {seen[key]}")
            seen[key] = path
            if kind == "Secret":
                result.secrets[(namespace, name)] = _secret_data(path, doc)
                continue
            model = LLMBackend if kind == "LLMBackend" else Route
            try:
                obj = model.model_validate(doc)
            except ValidationError as exc:
                raise ManifestError(f"{path}: {kind} {name!r}: {format_validation_error(exc)}") from exc
            if isinstance(obj, LLMBackend):
                result.backends.append(obj)
            else:
                result.routes.append(obj)
    return result

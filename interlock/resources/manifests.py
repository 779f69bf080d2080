"""Read Kubernetes-style YAML manifests (LLMBackend, Route, Secret) from files, as ``kubectl apply -f`` would,
reporting every problem at once."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from interlock.resources.common import GROUP_VERSION
from interlock.resources.llmbackend import LLMBackend
from interlock.resources.problems import closest, validation_problems
from interlock.resources.route import Route

__all__ = [
    "ManifestError",
    "ManifestSet",
    "format_validation_error",
    "load_manifests",
    "manifest_files",
    "read_manifests",
]

_YAML_SUFFIXES = (".yaml", ".yml", ".json")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(ValueError):
    """Manifests that cannot be used; one line per problem, each naming the file, the object and the field."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class ManifestSet:
    """The objects found in a set of manifests. ``secrets`` maps (namespace, name) to decoded string data;
    ``origins`` maps (kind, namespace, name) to the file that defines the object."""

    backends: list[LLMBackend] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    origins: dict[tuple[str, str, str], Path] = field(default_factory=dict)


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


def read_manifests(path: Path) -> ManifestSet:
    """``load_manifests`` of a file or directory that must hold at least one LLMBackend or Route."""
    files = manifest_files(path)
    if not files:
        raise ManifestError(f"{path}: no manifests: the directory has no .yaml, .yml or .json files; {_READS}")
    result = load_manifests(files)
    if not result.backends and not result.routes:
        found = f"{len(result.secrets)} Secret(s) and nothing else" if result.secrets else "no objects"
        raise ManifestError(f"{path}: no LLMBackend or Route: found {found}; {_READS}")
    return result


_READS = f"interlock reads LLMBackend and Route, apiVersion {GROUP_VERSION}, and Secret, apiVersion v1"
_API_VERSIONS = {"LLMBackend": GROUP_VERSION, "Route": GROUP_VERSION, "Secret": "v1"}


def _documents(path: Path, problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The mappings of one file, numbered from 1 (``List`` items are numbered as their list); problems of
    syntax and shape are added to ``problems``."""
    try:
        docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
        problems.append(f"{path}: not valid YAML{where}: {what or ' '.join(str(exc).split())}")
        return
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read it: {exc}")
        return
    for number, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append(f"{path}: document {number}: each document must be a mapping, got {type(doc).__name__}")
        elif doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            yield from ((number, item) for item in doc["items"] if isinstance(item, dict))
        else:
            yield number, doc


def _secret_data(path: Path, doc: dict[str, Any], problems: list[str]) -> dict[str, str]:
    name = doc.get("metadata", {}).get("name", "?")
    out: dict[str, str] = {}
    for key, value in (doc.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            problems.append(f"{path}: Secret {name!r}: data.{key} is not base64-encoded UTF-8 (stringData takes text)")
    out.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return out


def _kind_problem(kind: object, api_version: object) -> str | None:
    """What is wrong with a document's ``kind`` and ``apiVersion``, if anything."""
    if not isinstance(kind, str) or not kind:
        return f"kind: required field is missing; {_READS}"
    if kind not in _API_VERSIONS:
        guess = closest(kind, list(_API_VERSIONS))
        hint = f"did you mean {guess!r}? " if guess else ""
        return f"kind: unknown kind {kind!r}; {hint}{_READS}"
    want = _API_VERSIONS[kind]
    if api_version != want:
        got = "is missing" if api_version is None else f"{api_version!r} is not served"
        return f"apiVersion: {got}; {kind} needs apiVersion: {want}"
    return None


def load_manifests(paths: Iterable[Path]) -> ManifestSet:
    """Parse every LLMBackend, Route and Secret in ``paths``.

    Every problem in every file is collected and raised together as one ``ManifestError``: unreadable YAML,
    unknown kinds and API versions, invalid fields (with the closest valid name for a misspelt one), and objects
    defined twice.
    """
    result = ManifestSet()
    problems: list[str] = []
    for path in paths:
        for number, doc in _documents(path, problems):
            kind = doc.get("kind")
            raw_meta = doc.get("metadata")
            meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
            name = str(meta.get("name", "?"))
            namespace = str(meta.get("namespace") or "default")
            what = f"{kind} {name!r}" if isinstance(kind, str) and "name" in meta else f"document {number}"
            wrong = _kind_problem(kind, doc.get("apiVersion"))
            if wrong is not None:
                problems.append(f"{path}: {what}: {wrong}")
                continue
            key = (str(kind), namespace, name)
            if key in result.origins:
                problems.append(f"{path}: {kind} {namespace}/{name} is also defined in {result.origins[key]}")
                continue
            result.origins[key] = path
            if kind == "Secret":
                result.secrets[(namespace, name)] = _secret_data(path, doc, problems)
                continue
            model: type[LLMBackend | Route] = LLMBackend if kind == "LLMBackend" else Route
            try:
                obj = model.model_validate(doc)
            except ValidationError as exc:
                problems.extend(f"{path}: {what}: {line}" for line in validation_problems(exc, model))
                continue
            if isinstance(obj, LLMBackend):
                result.backends.append(obj)
            else:
                result.routes.append(obj)
    if problems:
        raise ManifestError(problems)
    return result

"""An in-memory Kubernetes API server over real HTTP, for kopf, the kubernetes client and kubectl.

URL layout, discovery and the wire details that clients depend on:

- ``/api``, ``/api/v1``, ``/apis``, ``/apis/G``, ``/apis/G/V`` (legacy discovery; kubectl falls back to it from the
  aggregated form), ``/version``; no ``/openapi/v2|v3`` (so kubectl needs ``--validate=false``).
- ``/api/v1/namespaces`` and ``/api/v1/namespaces/NAME`` are the namespaces themselves, not a namespace prefix.
- Lists carry ``kind: <Kind>List`` and the real resourceVersion; watches stream ``application/json`` lines, replay
  from ``?resourceVersion=N``, and with ``sendInitialEvents=true`` (kubectl's WatchList) end the initial objects with
  a BOOKMARK annotated ``k8s.io/initial-events-end``; ``timeoutSeconds`` ends a watch.
- Errors are ``Status`` objects with the API server's reasons (``NotFound``, ``AlreadyExists``, ``Conflict``,
  ``Invalid``...), strategic merge patches on custom resources get 415, server-side apply needs a fieldManager.
- Every request is recorded (verb, resource, user agent) for assertions and for the operator benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.operator.emulator import ssa
from tests.operator.emulator.kinds import BUILTIN_KINDS, ResourceType
from tests.operator.emulator.selectors import SelectorError, field_selector, label_selector
from tests.operator.emulator.store import ApiError, Obj, Store
from tests.operator.emulator.tables import table, wants_table

__all__ = ["Emulator", "RecordedRequest"]

_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}
_BUILTIN_KEYS = {t.key for t in BUILTIN_KINDS}
_TRUE = ("1", "true", "True")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection, discovery
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    user_agent: str
    status: int


@dataclass(frozen=True)
class _Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


class Emulator:
    """``async with Emulator() as emu``: serves on ``emu.url`` until the block ends."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = Store()
        self.requests: list[RecordedRequest] = []
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        assert server is not None
        assert server.sockets
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://{self._host}:{port}"
        return self.url

    async def stop(self) -> None:
        self.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator-token"}}],
            "contexts": [
                {"name": "emulator", "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace}}
            ],
            "current-context": "emulator",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    # --- test helpers --------------------------------------------------------------------------------------

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        group, _, version = api_version.rpartition("/")
        rt = self.store.types.get((group, version, plural))
        return None if rt is None else self.store.find(rt, namespace, name)

    def verbs(self, *, user_agent_prefix: str = "") -> Counter[str]:
        return Counter(
            r.verb for r in self.requests if r.user_agent.startswith(user_agent_prefix) and r.verb != "discovery"
        )

    # --- HTTP ----------------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record: dict[str, str] = {
            "verb": "discovery",
            "group": "",
            "resource": "",
            "subresource": "",
            "namespace": "",
            "name": "",
        }
        status = 200
        try:
            response = await self._dispatch(request, record)
            status = response.status
            return response
        except ApiError as exc:
            status = exc.code
            return _json(exc.status(), exc.code)
        finally:
            if record["verb"] != "watch":  # a watch is recorded when it starts: it may never end
                self._record(request, record, status)

    def _record(self, request: web.Request, record: dict[str, str], status: int) -> None:
        user_agent = request.headers.get("User-Agent", "")
        self.requests.append(RecordedRequest(method=request.method, user_agent=user_agent, status=status, **record))

    async def _dispatch(self, request: web.Request, record: dict[str, str]) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        if method == "GET" and (page := self._discovery(parts, request)):
            return _json(page)
        if parts[:1] == ["_emulator"]:
            return _json({"verbs": dict(self.verbs()), "resourceVersion": self.store.resource_version})
        target = self._target(parts)
        rt = target.rt
        record.update(
            group=rt.group,
            resource=rt.plural,
            subresource=target.subresource or "",
            namespace=target.namespace or "",
            name=target.name or "",
        )
        query = request.query
        if method == "GET" and (query.get("watch") in _TRUE):
            record["verb"] = "watch"
            self._record(request, record, 200)
            return await self._watch(request, target)
        if target.subresource == "scale":
            record["verb"] = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(method, "get")
            if method == "GET":
                return _json(self.store.scale(rt, target.namespace, target.name))
            if method in ("PUT", "PATCH"):
                patch_type = None if method == "PUT" else self._patch_type(request, target)
                body = await self._body(request)
                return _json(self.store.update_scale(rt, target.namespace, target.name, patch_type=patch_type,
                                                     body=body, manager=self._manager(request)))  # fmt: skip
        as_table = wants_table(request.headers.get("Accept", ""))
        if method == "GET" and target.name is None:
            record["verb"] = "list"
            listed = self._list(target, query)
            if as_table:
                return _json(table(rt, listed["items"], resource_version=listed["metadata"]["resourceVersion"],
                                   include_object=query.get("includeObject", "Metadata")))  # fmt: skip
            return _json(listed)
        if method == "GET":
            record["verb"] = "get"
            obj = self.store.get(rt, target.namespace, target.name or "")
            if as_table and target.subresource is None:
                return _json(table(rt, [obj], resource_version=obj["metadata"]["resourceVersion"],
                                   include_object=query.get("includeObject", "Metadata")))  # fmt: skip
            return _json(obj)
        if method == "POST" and target.name is None:
            record["verb"] = "create"
            body = await self._body(request)
            return _json(self.store.create(rt, target.namespace, body, manager=self._manager(request)), 201)
        if target.name is None and method == "DELETE":
            record["verb"] = "deletecollection"
            match = self._matcher(query)
            for obj in self.store.list(rt, target.namespace, match):
                self.store.delete(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            return _json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
        if target.name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        if method == "PUT":
            record["verb"] = "update"
            body = await self._body(request)
            return _json(
                self.store.update(
                    rt, target.namespace, target.name, patch_type=None, body=body, subresource=target.subresource,
                    manager=self._manager(request),
                )
            )  # fmt: skip
        if method == "PATCH":
            record["verb"] = "patch"
            return _json(await self._patch(request, target))
        if method == "DELETE":
            record["verb"] = "delete"
            options = await self._body(request, optional=True) or {}
            policy = query.get("propagationPolicy") or options.get("propagationPolicy")
            return _json(self.store.delete(rt, target.namespace, target.name, orphan=policy == "Orphan"))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    @staticmethod
    def _manager(request: web.Request) -> str:
        return ssa.manager_of(request.query.get("fieldManager"), request.headers.get("User-Agent", ""))

    def _patch_type(self, request: web.Request, target: _Target) -> str:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch_type = _PATCH_TYPES.get(content_type)
        if patch_type is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(_PATCH_TYPES),
            )
        if patch_type == "strategic" and target.rt.key not in _BUILTIN_KEYS:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources: use a merge patch",
            )
        if patch_type == "apply" and not request.query.get("fieldManager"):
            raise ApiError(400, "BadRequest", "PATCH of type application/apply-patch+yaml requires a fieldManager")
        return patch_type

    async def _patch(self, request: web.Request, target: _Target) -> Obj:
        patch_type = self._patch_type(request, target)
        body = await self._body(request, yaml_ok=patch_type == "apply")
        return self.store.update(
            target.rt,
            target.namespace,
            target.name or "",
            patch_type=patch_type,
            body=body,
            subresource=target.subresource,
            manager=self._manager(request),
            force=request.query.get("force") in _TRUE,
        )

    @staticmethod
    async def _body(request: web.Request, *, optional: bool = False, yaml_ok: bool = False) -> Any:
        if "protobuf" in request.headers.get("Content-Type", ""):
            # client-go retries in JSON when the server answers 415 to protobuf, as it does for custom resources.
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format: protobuf")
        raw = await request.read()
        if not raw.strip():
            if optional:
                return None
            raise ApiError(400, "BadRequest", "the request has no body")
        try:
            return yaml.safe_load(raw) if yaml_ok else json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"the body of the request cannot be decoded: {exc}") from exc

    def _target(self, parts: list[str]) -> _Target:
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        # /api/v1/namespaces/NS/PLURAL... is a namespace prefix; /api/v1/namespaces/NAME[/status] is a namespace.
        if rest[:1] == ["namespaces"] and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rt = self.store.resolve(group, version, rest[0])
        if rt.namespaced is False and namespace is not None:
            raise ApiError(404, "NotFound", f"{rt.display} is not namespaced")
        return _Target(rt, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)

    @staticmethod
    def _matcher(query: Any) -> Any:
        try:
            labels, fields = label_selector(query.get("labelSelector")), field_selector(query.get("fieldSelector"))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        return lambda obj: labels(obj) and fields(obj)

    def _list(self, target: _Target, query: Any) -> Obj:
        match = self._matcher(query)
        if target.name is not None:
            name = target.name
            base = match
            match = lambda obj: base(obj) and obj["metadata"]["name"] == name  # noqa: E731
        items = self.store.list(target.rt, target.namespace, match)
        return {
            "kind": f"{target.rt.kind}List",
            "apiVersion": target.rt.api_version,
            "metadata": {"resourceVersion": str(self.store.resource_version)},
            "items": items,
        }

    async def _watch(self, request: web.Request, target: _Target) -> web.StreamResponse:
        query = request.query
        match = self._matcher(query)
        if target.name is not None:
            base, name = match, target.name
            match = lambda obj: base(obj) and obj["metadata"]["name"] == name  # noqa: E731
        initial = query.get("sendInitialEvents") in _TRUE
        since_text = query.get("resourceVersion") or ""
        since = None if initial or since_text in ("", "0") else int(since_text)
        try:
            first, watcher = self.store.watch(target.rt, target.namespace, match, since=since)
        except ApiError as exc:  # 410 Gone is an event on the stream, not an HTTP error
            first, watcher = [{"type": "ERROR", "object": exc.status()}], None
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if initial:
            first.append(self._bookmark(target.rt))
        timeout = float(query.get("timeoutSeconds") or 0) or None
        try:
            for event in first:
                await response.write(json.dumps(event).encode() + b"\n")
            if watcher is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        while (event := await watcher.queue.get()) is not None:
                            await response.write(json.dumps(event).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if watcher is not None:
                self.store.watchers.discard(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def _bookmark(self, rt: ResourceType) -> Obj:
        return {
            "type": "BOOKMARK",
            "object": {
                "kind": rt.kind,
                "apiVersion": rt.api_version,
                "metadata": {
                    "resourceVersion": str(self.store.resource_version),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        }

    # --- discovery -----------------------------------------------------------------------------------------

    def _discovery(self, parts: list[str], request: web.Request) -> Obj | None:
        types = list(self.store.types.values())
        if parts == ["version"]:
            return {"major": "1", "minor": "37", "gitVersion": "v1.37.0-interlock-emulator", "platform": "linux/amd64"}
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return {"status": "ok"}
        if parts == ["api"]:
            host = request.host
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }
        if parts == ["apis"]:
            groups = sorted({t.group for t in types if t.group})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group(g, types) for g in groups]}
        if len(parts) == 2 and parts[0] == "apis":
            if not any(t.group == parts[1] for t in types):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1], types)}
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            served = [t for t in types if t.group == group and t.version == version]
            if not served:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": served[0].api_version,
                "resources": [entry for t in served for entry in t.discovery()],
            }
        return None

    @staticmethod
    def _group(group: str, types: list[ResourceType]) -> Obj:
        versions = sorted({t.version for t in types if t.group == group}, reverse=True)
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

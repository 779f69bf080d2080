"""Secrets a Helm release needs, generated once, in the cluster: ``python -m interlock.deploy.secrets``.

The chart's pre-install/pre-upgrade hook Job runs this instead of drawing random values at render time: a chart
that uses ``randAlphaNum`` (with ``lookup`` to keep old values) renders new secrets on every ``helm template`` or
Argo CD sync, because ``lookup`` sees no cluster there. Here a missing Secret is created, a Secret that lacks a key
gets that key, and an existing value is never changed, so every render of the chart is identical and every run of
the Job is a no-op after the first.

The spec (``--spec`` or ``$INTERLOCK_GENERATED_SECRETS``, JSON) lists the Secrets and how each key is made::

    [{"name": "il-interlock-auth", "labels": {...},
      "keys": {"admin-token": {"random": 32},
               "database-url": {"template": "postgresql+asyncpg://interlock:{password}@db:5432/interlock"}}}]

``{"random": N}`` is ``secrets.token_urlsafe(N)``: N random bytes, URL-safe, so a value can go into a URL without
escaping. ``{"template": ...}`` is formatted with the Secret's other keys (existing or new). No value is ever
printed. Credentials: the pod's service account, else ``$KUBECONFIG``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import ssl
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config

__all__ = ["KeySpec", "SecretSpec", "ensure_secrets", "load_client", "main", "parse_spec", "values_for"]

MANAGED_BY = "interlock-secrets"
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_MERGE = "application/merge-patch+json"
_ATTEMPTS = 5  # conflicting writers (two hook Jobs at once): re-read and retry


@dataclass(frozen=True)
class KeySpec:
    random_bytes: int | None = None
    template: str | None = None


@dataclass(frozen=True)
class SecretSpec:
    name: str
    keys: Mapping[str, KeySpec]
    labels: Mapping[str, str]


def parse_spec(text: str) -> list[SecretSpec]:
    """The spec, or ``ValueError`` saying what is wrong with it."""
    out = []
    for item in json.loads(text):
        keys = {}
        for key, how in item["keys"].items():
            if "random" in how and isinstance(how["random"], int) and how["random"] >= 16:
                keys[key] = KeySpec(random_bytes=how["random"])
            elif isinstance(how.get("template"), str):
                fields = {f for _, f, _, _ in string.Formatter().parse(how["template"]) if f}
                if not fields <= set(item["keys"]) - {key}:
                    raise ValueError(f"{item['name']}/{key}: the template names unknown keys {sorted(fields)}")
                keys[key] = KeySpec(template=how["template"])
            else:
                raise ValueError(f"{item['name']}/{key}: give {{'random': N >= 16}} or {{'template': '...'}}")
        out.append(SecretSpec(item["name"], keys, dict(item.get("labels") or {})))
    return out


def values_for(spec: SecretSpec, existing: Mapping[str, str]) -> dict[str, str]:
    """Every key of the spec: the existing value when there is one, else a new one (randoms before templates)."""
    values = dict(existing)
    for key, how in spec.keys.items():
        if key not in values and how.random_bytes is not None:
            values[key] = secrets.token_urlsafe(how.random_bytes)
    for key, how in spec.keys.items():
        if key not in values and how.template is not None:
            values[key] = how.template.format(**values)
    return values


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def ensure_secrets(client: httpx.Client, namespace: str, specs: list[SecretSpec]) -> list[str]:
    """Create what is missing, never change what exists; one line per Secret saying what was done."""
    report = []
    for spec in specs:
        url = f"/api/v1/namespaces/{namespace}/secrets"
        for _ in range(_ATTEMPTS):
            got = client.get(f"{url}/{spec.name}")
            if got.status_code == 404:
                values = values_for(spec, {})
                labels = {**spec.labels, "app.kubernetes.io/managed-by": MANAGED_BY}
                body = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": {"name": spec.name, "labels": labels},
                    "data": {k: _b64(v) for k, v in values.items()},
                }
                created = client.post(url, json=body)
                if created.status_code == 409:
                    continue  # created meanwhile: read it again
                _check(created, f"create Secret {namespace}/{spec.name}")
                report.append(f"created Secret {spec.name} (keys: {', '.join(sorted(values))})")
                break
            _check(got, f"read Secret {namespace}/{spec.name}")
            obj = got.json()
            existing = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            missing = [k for k in spec.keys if k not in existing]
            if not missing:
                report.append(f"kept Secret {spec.name} (every key present; nothing changed)")
                break
            values = values_for(spec, existing)
            patch = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "data": {k: _b64(values[k]) for k in missing},
            }
            patched = client.patch(f"{url}/{spec.name}", content=json.dumps(patch), headers={"content-type": _MERGE})
            if patched.status_code == 409:
                continue  # changed meanwhile: read it again
            _check(patched, f"patch Secret {namespace}/{spec.name}")
            report.append(f"added {', '.join(sorted(missing))} to Secret {spec.name} (existing keys unchanged)")
            break
        else:
            raise RuntimeError(f"Secret {namespace}/{spec.name} kept changing under us ({_ATTEMPTS} conflicts)")
    return report


def _check(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text
    raise RuntimeError(f"cannot {what}: {response.status_code} {message[:300]}")


async def _configuration() -> tuple[Configuration, str | None, bool]:
    """The service account (in a pod) or ``$KUBECONFIG``: the client configuration, its bearer header (if any) and
    whether it is the pod's own. The same loader as the operator's (``kubernetes_asyncio``)."""
    configuration = Configuration()
    in_pod = True
    try:
        load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException:
        in_pod = False
        await load_kube_config(config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration)
    auth = await configuration.get_api_key_with_prefix("authorization") or await configuration.get_api_key_with_prefix(
        "BearerToken"
    )
    return configuration, auth or None, in_pod


def load_client() -> tuple[httpx.Client, str | None]:
    """An httpx client on the service account (in a pod) or ``$KUBECONFIG``; and the pod's namespace if known."""
    configuration, auth, in_pod = asyncio.run(_configuration())
    namespace = _SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() if in_pod else None
    headers = {"user-agent": MANAGED_BY}
    if auth:
        headers["authorization"] = auth if " " in auth else f"Bearer {auth}"
    verify: ssl.SSLContext | bool = False
    if configuration.verify_ssl:
        verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if configuration.cert_file:
            verify.load_cert_chain(configuration.cert_file, configuration.key_file)
    client = httpx.Client(base_url=str(configuration.host), headers=headers, verify=verify, timeout=30)
    return client, namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interlock.deploy.secrets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", help="where the Secrets live (default: the pod's namespace)")
    parser.add_argument("--spec", default=os.environ.get("INTERLOCK_GENERATED_SECRETS"), help="the JSON spec")
    args = parser.parse_args(argv)
    prog = parser.prog
    if not args.spec:
        print(f"{prog}: give --spec or INTERLOCK_GENERATED_SECRETS", file=sys.stderr)
        return 2
    try:
        specs = parse_spec(args.spec)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"{prog}: bad spec: {exc}", file=sys.stderr)
        return 2
    try:
        client, pod_namespace = load_client()
    except (ConfigException, OSError) as exc:
        print(f"{prog}: no service account and no usable kubeconfig: {exc}", file=sys.stderr)
        return 1
    namespace = args.namespace or pod_namespace
    if not namespace:
        print(f"{prog}: give --namespace (not running in a pod)", file=sys.stderr)
        return 2
    try:
        with client:
            for line in ensure_secrets(client, namespace, specs):
                print(f"{prog}: {line}")
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

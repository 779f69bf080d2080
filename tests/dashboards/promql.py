"""Read Grafana dashboards the way Grafana does: panel queries, template variables and their substitution, and the
metric names and label matchers inside a PromQL expression (enough of PromQL's lexer for that, no more)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DASHBOARDS",
    "Query",
    "Variable",
    "load",
    "metric_names",
    "panels",
    "queries",
    "selectors",
    "substitute",
    "variables",
]

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end"}
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref}"


@dataclass(frozen=True)
class Variable:
    name: str
    metric_selector: str
    label: str


def load(name: str) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((DASHBOARDS / name).read_text())
    return dashboard


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (a collapsed row holds its panels)."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: Mapping[str, Any]) -> list[Query]:
    return [
        Query(dashboard["uid"], panel["title"], target["refId"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variables(dashboard: Mapping[str, Any]) -> list[Variable]:
    """The query variables, each a Grafana ``label_values(selector, label)``."""
    out = []
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)", query)
        assert match, f"variable {var['name']}: not a label_values() query: {query}"
        out.append(Variable(var["name"], match.group(1), match.group(2)))
    return out


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` and ``${name}`` (Grafana's built-ins like ``$__rate_interval`` included)."""
    for name in sorted(values, key=len, reverse=True):  # $__range before $__r..., $route before $r
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, grouping labels or
    inside label matchers, strings or range/offset brackets."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name in _KEYWORDS:
            continue  # a function or aggregation
        if text[match.start() - 1 : match.start()].isdigit():
            continue  # the tail of a number (1e3, 0x1f) or a duration (offset 5m)
        names.add(name)
    return names


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """``(metric, label names matched)`` for each ``metric{...}`` selector."""
    text = _STRING.sub('""', expr)
    return [(m.group(1), set(_MATCHER_LABEL.findall(m.group(2)))) for m in _SELECTOR.finditer(text)]

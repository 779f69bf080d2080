"""The README points only inside the repository: no command refers to a path outside it (absolute, `~/`, `../`),
no prose climbs out of it (`../`), no link leaves it, and every repository path it names exists. (Running its
snippets is another test's job.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
# A path that starts a word: not part of a URL, a variable, a host:port or another path.
OUTSIDE = re.compile(r"(?<![\w:/.$@{}()>-])(?P<path>(?:~|\.\.)?/[A-Za-z0-9_.][\w.@/-]*)")
RELATIVE = re.compile(r"(?<![\w:/.$@{-])(?P<path>[A-Za-z0-9_.][\w.-]*/[\w./-]*)")


def _tracked_top_level() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {line.split("/", 1)[0] for line in files.splitlines() if "/" in line}


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(m["lang"], m["body"]) for m in FENCE.finditer(text)]


def _prose(text: str) -> str:
    return FENCE.sub("", text)


def test_no_command_refers_to_a_path_outside_the_repository() -> None:
    problems = []
    for lang, body in _blocks(README.read_text()):
        if lang in ("yaml", "json"):
            continue  # manifests: their `url:` values are URLs, not paths
        for number, line in enumerate(body.splitlines(), start=1):
            code = line.split(" #", 1)[0] if lang in ("bash", "sh", "shell", "") else line
            problems += [f"{lang} block, line {number}: {m['path']}" for m in OUTSIDE.finditer(code)]
    for span in INLINE.findall(_prose(README.read_text())):
        if "../" in span:  # prose may name well-known places (`~/.kube/config`); never a path out of the clone
            problems.append(f"inline `{span}`")
    assert not problems, "the README refers to paths outside the repository:\n" + "\n".join(problems)


def test_every_link_stays_in_the_repository_and_exists() -> None:
    for target in LINK.findall(README.read_text()):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (REPO / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO), f"link {target} leaves the repository"
        assert path.exists(), f"link {target} points at nothing"


def test_every_repository_path_the_readme_names_exists() -> None:
    top = _tracked_top_level()
    text = README.read_text()
    candidates = [m["path"] for _, body in _blocks(text) for m in RELATIVE.finditer(body)]
    candidates += [m["path"] for span in INLINE.findall(_prose(text)) for m in RELATIVE.finditer(span)]
    missing = sorted({p for p in candidates if p.split("/", 1)[0] in top and not (REPO / p.rstrip(".,;:")).exists()})
    assert not missing, f"the README names repository paths that do not exist: {missing}"


def test_the_checks_see_what_they_should() -> None:
    """The patterns flag an outside path and skip URLs, variables and ports (so the tests above can fail)."""
    assert [m["path"] for m in OUTSIDE.finditer("cp /etc/x ~/y ../z $API/v1 http://h:1/p svc/a")] == [
        "/etc/x",
        "~/y",
        "../z",
    ]
    assert [m["path"] for m in RELATIVE.finditer("kubectl apply -f examples/cluster/ $API/v1 http://h/p")] == [
        "examples/cluster/"
    ]

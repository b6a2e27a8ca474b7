"""The house rules a reviewer would otherwise check by eye."""

from __future__ import annotations

import ast
import re

from tests.helpers import ROOT

SOURCES = sorted((ROOT / "src" / "torchparity").rglob("*.py"))


def test_every_broad_except_says_why():
    """ruff selects BLE: each deliberate broad catch carries its reason."""
    bare = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in SOURCES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"noqa: BLE001\s*$", line)
    ]
    assert not bare, f"a broad except without its reason: {bare}"


# Literals equal to a status value that are not statuses: (file, the line's text).
NOT_STATUSES = {
    ("backends/native_client.py", 'if status == "error":'),  # the runner protocol's line kind
    ("backends/web_runner.py", 'if status == "error":'),  # the same protocol, in Node
    ("cli/selection.py", 'if key in ("min_time", "timeout"):'),  # option names
    ("run/instructions.py", 'if "error" in answer:'),  # a key of the counter's answer
}


def _status_literals(tree: ast.AST, values: set[str]) -> list[ast.Constant]:
    """String constants equal to a status value where a status is compared or
    stored: comparisons (and the tuples they test membership in), a dict's
    ``"status"`` value, a ``status=`` keyword, ``x["status"] = ...``."""
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                found += side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
        elif isinstance(node, ast.Dict):
            found += [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "status"
            ]
        elif isinstance(node, ast.keyword) and node.arg == "status":
            found.append(node.value)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Subscript)
            and isinstance(t.slice, ast.Constant)
            and t.slice.value == "status"
            for t in node.targets
        ):
            found.append(node.value)
    return [n for n in found if isinstance(n, ast.Constant) and n.value in values]


def test_statuses_are_spelled_only_in_the_status_module():
    """_core/status.py is the one place a status value is spelled: elsewhere
    ``Status.X`` (or ``BAD_STATUSES``/``MEASURED_STATUSES``), never ``"fail"``."""
    from torchparity._core.status import STATUSES

    package = ROOT / "src" / "torchparity"
    spelled = []
    for path in SOURCES:
        if path.name == "status.py" and path.parent.name == "_core":
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        where = path.relative_to(package).as_posix()
        for node in _status_literals(ast.parse(text), set(STATUSES)):
            line = lines[node.lineno - 1].strip()
            if (where, line) not in NOT_STATUSES:
                spelled.append(f"{where}:{node.lineno}: {line}")
    assert not spelled, "status values spelled outside _core/status.py:\n" + "\n".join(spelled)


def test_the_readme_links_every_doc_once_in_its_table():
    """The README is the door: its documentation table names every docs/*.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Documentation", 1)[-1].split("\n## ", 1)[0]
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)\)", table))
    assert linked == {p.name for p in (ROOT / "docs").glob("*.md")}

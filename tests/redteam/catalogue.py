"""The red-team catalogue: every attempt in tests/redteam, by category (issue 12).

An attempt is a test function marked ``@pytest.mark.redteam("<category>")`` (or a module whose
``pytestmark`` carries the marker). It *got through* when it is also marked ``xfail(strict=True)``:
the test states what should hold and names the gap; everything else is refused or has no effect.
A parametrized test counts once (its cases are variants of one attempt).

``python tests/redteam/catalogue.py`` prints the table that tests/redteam/README.md carries;
test_redteam_catalogue.py keeps the two equal and every category at ``MIN_ATTEMPTS`` or more.
Read from the source (``ast``), so counting needs neither a cluster nor a test run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIN_ATTEMPTS = 5
CATEGORIES: dict[str, str] = {
    "quota": "quota and GPU-resource tricks",
    "leases": "lease edits and farming",
    "identity": "approval and identity forgery",
    "forgery": "status and annotation forgery",
    "labels": "label games",
    "scope": "cross-namespace policies",
    "slack": "Slack clicks and replays",
    "sources": "data-source spoofing",
}


@dataclass(frozen=True)
class Attempt:
    file: str
    test: str
    category: str
    got_through: bool  # marked xfail(strict=True): the gap is named in its reason


def _mark(node: ast.expr, name: str) -> ast.Call | None:
    """``pytest.mark.<name>(...)`` as a call, or None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name:
        inner = node.func.value
        if isinstance(inner, ast.Attribute) and inner.attr == "mark":
            return node
    return None


def _marks(nodes: list[ast.expr]) -> tuple[str | None, bool]:
    category, through = None, False
    for node in nodes:
        if call := _mark(node, "redteam"):
            arg = call.args[0]
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), ast.dump(call)
            category = arg.value
        if call := _mark(node, "xfail"):
            through = through or any(k.arg == "strict" and isinstance(k.value, ast.Constant) and k.value.value is True
                                     for k in call.keywords)
    return category, through


def _module_marks(tree: ast.Module) -> list[ast.expr]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            value = node.value
            return list(value.elts) if isinstance(value, ast.List | ast.Tuple) else [value]
    return []


def attempts(folder: Path = HERE) -> list[Attempt]:
    out: list[Attempt] = []
    for path in sorted(folder.glob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        module_category, module_through = _marks(_module_marks(tree))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.name.startswith("test_"):
                continue
            category, through = _marks(node.decorator_list)
            category = category or module_category
            if category is not None:
                out.append(Attempt(path.name, node.name, category, through or module_through))
    return out


def table(found: list[Attempt] | None = None) -> str:
    found = attempts() if found is None else found
    lines = ["| category | attempts | refused / no effect | got through |", "|---|---:|---:|---:|"]
    for key, title in CATEGORIES.items():
        mine = [a for a in found if a.category == key]
        through = sum(a.got_through for a in mine)
        lines.append(f"| {title} (`{key}`) | {len(mine)} | {len(mine) - through} | {through} |")
    total = len(found)
    through = sum(a.got_through for a in found)
    lines.append(f"| **all** | {total} | {total - through} | {through} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
    for a in attempts():
        if a.got_through:
            print(f"got through: {a.category}: {a.file}::{a.test}")

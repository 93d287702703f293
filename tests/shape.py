"""How Paraaf's code is shaped: `python -m tests.shape` prints the functions in
services/ and shared/, their median length, how many pass 30 lines, and the
longest ones. CI runs it through tests/unit/test_shape.py, which keeps the
goals (median at most 6 lines, none over 40 except the declarative tables
named in ALLOWED_LONG) from sliding back.

A function's length is its lines from `def` to its last line, docstring and
blank lines excluded, decorators not counted.
"""

import ast
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("services", "shared")
GOAL_MEDIAN = 6
GOAL_LONGEST = 40
# Longer than GOAL_LONGEST on purpose: tables of declarations, not logic. Each says why.
ALLOWED_LONG: dict[str, str] = {}


@dataclass(frozen=True)
class Function:
    where: str
    name: str
    lines: int

    @property
    def key(self) -> str:
        return f"{self.where}:{self.name}"


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        docstring = set(range(body[0].lineno, body[0].end_lineno + 1))
    else:
        docstring = set()
    lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
    return sum(1 for n in lines if n not in docstring and source[n - 1].strip())


def functions(root: Path = ROOT) -> list[Function]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            source = text.splitlines()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.append(Function(str(path.relative_to(root)), node.name, _body_lines(node, source)))
    return found


def report(found: list[Function]) -> str:
    lengths = [f.lines for f in found]
    longest = sorted(found, key=lambda f: -f.lines)
    over = [f for f in found if f.lines > 30]
    lines = [
        f"functions in {' and '.join(p + '/' for p in PACKAGES)}: {len(found)}",
        f"median length: {statistics.median(lengths):g} lines (goal: at most {GOAL_MEDIAN})",
        f"over 30 lines: {len(over)}; over {GOAL_LONGEST}: {sum(1 for f in found if f.lines > GOAL_LONGEST)}",
        "longest five:",
        *(f"  {f.lines:4d}  {f.key}{'  (declarative: ' + ALLOWED_LONG[f.key] + ')' if f.key in ALLOWED_LONG else ''}" for f in longest[:5]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(functions()))
    sys.exit(0)

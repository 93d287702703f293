"""How the test suites are laid out: what two suites share lives in tests/support, never in one suite's test module."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return names | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}


def test_no_test_module_imports_another_test_module() -> None:
    """A test module imports no test_*.py module: importing one pulls in its fixtures and marks, and a change to one
    suite's checks would silently change another suite's (tests/cluster once took tests/faults/test_crashes.py's)."""
    borrowed = {
        f"{path.relative_to(TESTS)}: {module}"
        for path in TESTS.rglob("*.py")
        for module in _imported_modules(path)
        if module.rsplit(".", 1)[-1].startswith("test_")
    }
    assert borrowed == set()

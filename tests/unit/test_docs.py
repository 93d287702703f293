"""README's first screen says what Paraaf is, its two commands and shows its two pictures; docs/integrating.md
links every example client the e2e tests run."""

import ast
import re
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def test_readmes_first_screen_has_the_two_commands_and_two_small_pictures_that_exist() -> None:
    """Above README's first section: `make run`, `make test`, and two PNGs in docs/img of under 300 KB each."""
    first_screen = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    assert "make run" in first_screen and "make test" in first_screen
    pictures = re.findall(r'<img src="(docs/img/[^"]+\.png)"', first_screen)
    assert pictures == ["docs/img/signing-page.png", "docs/img/figures.png"]
    for picture in pictures:
        path = ROOT / picture
        assert path.stat().st_size < 300 * 1024, f"{picture} is too large: run `make screenshots`"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 390, picture


def test_integrating_md_links_every_example_client() -> None:
    """Each docs/examples/*.py is linked from docs/integrating.md, and every linked example exists."""
    guide = (ROOT / "docs" / "integrating.md").read_text()
    linked = set(re.findall(r"\]\((examples/[^)]+\.py)\)", guide))
    assert linked == {f"examples/{p.name}" for p in (ROOT / "docs" / "examples").glob("*.py")}
    assert linked == {"examples/minutes.py", "examples/permits.py", "examples/ecounter.py"}


def test_the_example_clients_need_nothing_of_paraaf_but_aio_pika() -> None:
    """An integrator runs the examples without Paraaf's code: they import only the standard library and aio-pika."""
    allowed = set(sys.stdlib_module_names) | {"aio_pika"}
    for example in (ROOT / "docs" / "examples").glob("*.py"):
        tree = ast.parse(example.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert imported <= allowed, f"{example.name} imports {imported - allowed}"

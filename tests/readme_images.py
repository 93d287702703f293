"""README's two pictures, docs/img/signing-page.png (a signer's phone) and
docs/img/figures.png (the operators' figures), cut from the screenshots the
browser tests take (tests/artifacts/); ``make screenshots`` runs those tests
and then this. Cut to what a first screen shows and reduced to 256 colours,
so each stays well under 300 KB in git."""

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
IMAGES = ROOT / "docs" / "img"
SIGNING = "test_a_signer_on_a_phone_sees_the_document_signs_and_gets_a_confirmation/01-signing-page.png"
FIGURES = "test_after_a_year_played_through_the_services_the_dashboards_totals_equal_the_api_and_a_sql_count/01-figures-year-desktop.png"
# (screenshot, picture, width it is shown at, how much of the top is kept, in pixels of that width)
PICTURES = ((SIGNING, "signing-page.png", 780, 1688), (FIGURES, "figures.png", 1280, 1200))
LIMIT = 300 * 1024


def cut(shot: Path, picture: Path, width: int, height: int) -> int:
    """The top ``height`` of ``shot`` at ``width`` pixels wide, in 256 colours; the size written."""
    image = Image.open(shot).convert("RGB")
    scale = width / image.width
    image = image.resize((width, round(image.height * scale)), Image.Resampling.LANCZOS)
    image = image.crop((0, 0, width, min(height, image.height))).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    picture.parent.mkdir(parents=True, exist_ok=True)
    image.save(picture, optimize=True)
    return picture.stat().st_size


def main() -> int:
    missing = [name for name, *_ in PICTURES if not (ARTIFACTS / name).is_file()]
    if missing:
        print(f"no screenshot {', '.join(missing)} in tests/artifacts: run `make screenshots`", file=sys.stderr)
        return 1
    for name, picture, width, height in PICTURES:
        size = cut(ARTIFACTS / name, IMAGES / picture, width, height)
        print(f"docs/img/{picture}: {size // 1024} KB")
        if size > LIMIT:
            print(f"docs/img/{picture} is over {LIMIT // 1024} KB: keep less of the page", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

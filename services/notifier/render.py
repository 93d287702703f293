"""Mails rendered from Jinja2 templates in the recipient's language (Dutch by default)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Template
from markupsafe import Markup

__all__ = ["Mail", "MailRenderer"]

LANGUAGES = ("nl", "fr", "en")


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str


class MailRenderer:
    def __init__(self, directory: Path | None = None) -> None:
        loader = FileSystemLoader(directory or Path(__file__).parent / "templates")
        self._html = Environment(loader=loader, autoescape=True, trim_blocks=True)
        self._text = Environment(loader=loader, autoescape=False, trim_blocks=True)  # the plain-text part

    def render(self, kind: str, language: str, **values: Any) -> Mail:
        language = language if language in LANGUAGES else "nl"
        name = f"{language}/{kind}.j2"
        values = {**values, "lang": language}
        text = self._text.get_template(name)
        html = self._html.get_template(name)
        content = "".join(html.blocks["html"](html.new_context(values)))
        return Mail(
            subject=_block(text, "subject", values).strip(),
            text=_block(text, "text", values).strip() + "\n",
            html=self._html.get_template("layout.html").render(content=Markup(content), lang=language),
        )


def _block(template: Template, block: str, values: dict[str, Any]) -> str:
    return "".join(template.blocks[block](template.new_context(values)))

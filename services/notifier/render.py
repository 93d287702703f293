"""Mails rendered from Jinja2 templates in the recipient's language (Dutch by default).

A template ``templates/<lang>/<kind>.j2`` has three blocks: ``subject``,
``text`` (the plain-text part) and ``html`` (set inside ``layout.html``).
Dates are shown in the organisation's time zone through the filters ``day``
and ``moment``.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from shared.contract import LANGUAGES

__all__ = ["KINDS", "LANGUAGES", "LINK", "Mail", "MailRenderer"]

# Where the link goes in a queued mail: the sender puts the real one there as it sends.
LINK = "https://paraaf.invalid/link-made-when-sent"
KINDS = ("request", "reminder", "reassigned", "moved", "completed", "declined", "routing_alert", "sign_in", "digest")

_DAY = {"nl": "%d-%m-%Y", "fr": "%d/%m/%Y", "en": "%d %B %Y"}
_TIME = {"nl": " om %H:%M", "fr": " à %H:%M", "en": " at %H:%M"}


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str

    def with_link(self, url: str) -> "Mail":
        return Mail(self.subject, self.text.replace(LINK, url), self.html.replace(LINK, url))


class MailRenderer:
    def __init__(self, timezone: str = "Europe/Brussels", directory: Path | None = None) -> None:
        loader = FileSystemLoader(directory or Path(__file__).parent / "templates")
        zone = ZoneInfo(timezone)
        # A missing value must fail loudly in tests, not leave a blank in a mail to a mayor.
        self._html = Environment(loader=loader, autoescape=True, trim_blocks=True, undefined=StrictUndefined)
        self._text = Environment(loader=loader, autoescape=False, trim_blocks=True, undefined=StrictUndefined)
        for env in (self._html, self._text):
            env.filters["day"] = pass_context(lambda ctx, value: _local(ctx, value, zone, with_time=False))
            env.filters["moment"] = pass_context(lambda ctx, value: _local(ctx, value, zone, with_time=True))

    def render(self, kind: str, language: str, **values: Any) -> Mail:
        language = language if language in LANGUAGES else "nl"
        name = f"{language}/{kind}.j2"
        values = {**values, "lang": language}
        text = self._text.get_template(name)
        html = self._html.get_template(name)
        content = "".join(html.blocks["html"](html.new_context(values)))
        return Mail(
            subject=" ".join(_block(text, "subject", values).split()),
            text=_block(text, "text", values).strip() + "\n",
            html=self._html.get_template("layout.html").render(content=Markup(content), lang=language),
        )


def _local(context: Context, value: datetime, zone: ZoneInfo, *, with_time: bool) -> str:
    language = context.get("lang", "nl")
    local = value.astimezone(zone)
    return local.strftime(_DAY[language] + (_TIME[language] if with_time else ""))


def _block(template: Template, block: str, values: dict[str, Any]) -> str:
    return "".join(template.blocks[block](template.new_context(values)))

"""The figures for operators: the dashboard /p/ops/figures (charts, and the
same figures as plain tables, readable without script), /p/ops/figures.json
and /p/ops/figures.csv, all three with the same filters (``from``, ``to``:
YYYY-MM-DD, both days included; ``department``); and the dashboard's two
scripts — Chart.js, vendored in services/signer/static/vendor/chartjs, and
the page's own — served by Paraaf itself, never from elsewhere.

Only a signed-in operator gets the figures, and the JSON and CSV also a
script with an API key of the ``operate`` scope (its org's figures). Anyone
else signed in is answered as for a page that does not exist (404); without a
session the page sends her to sign in, and the JSON and the CSV answer 401.
"""

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from services.signer.figures import Figures, FiguresReader, PeriodRefused, Row, csv_text, parse_period, short_duration, unnamed
from services.signer.http._portal_auth import PortalAuth, Visitor
from services.signer.portal_texts import portal_texts
from shared.apikeys import find_key
from shared.contract import LANGUAGES

__all__ = ["SECTIONS", "figures_routes", "page_context", "row_label"]

_STATIC = Path(__file__).resolve().parents[1] / "static"
_ASSETS = {"chart.umd.min.js": "vendor/chartjs/chart.umd.min.js", "figures.js": "ops_figures.js"}
# The portal's policy plus scripts and fetches from this origin only: no inline script, nothing from elsewhere.
_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; style-src 'unsafe-inline';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# (section, heading, [(series, heading, chart kind or None)]) in the order the page shows them.
SECTIONS: list[tuple[str, str, list[tuple[str, str, str | None]]]] = [
    ("documents", "fig_documents", [
        ("documents.by_month", "fig_by_month", "bar"), ("documents.by_year", "fig_by_year", None),
        ("documents.by_department", "fig_by_department", "hbar"), ("documents.by_flow", "fig_by_flow", "hbar"),
        ("documents.by_source", "fig_by_source", "hbar"), ("documents.by_status", "fig_by_status", "hbar"),
    ]),
    ("signatures", "fig_signatures", [
        ("signatures.by_month", "fig_by_month", "bar"), ("signatures.by_year", "fig_by_year", None),
        ("signatures.by_department", "fig_by_department", "hbar"), ("signatures.by_flow", "fig_by_flow", "hbar"),
        ("signatures.by_source", "fig_by_source", "hbar"), ("signatures.by_action", "fig_by_action", None),
    ]),
    ("durations", "fig_durations", [
        ("durations.completion", "fig_completion", None), ("durations.completion_by_flow", "fig_completion_by_flow", "times"),
        ("durations.by_step", "fig_by_step", "times"),
    ]),
    ("pending", "fig_pending", [("pending.by_signer", "fig_pending_by_signer", "hbar")]),
    ("substitutions", "fig_substitutions", [
        ("substitutions.by_month", "fig_by_month", "bar"), ("substitutions.for_whom", "fig_for_whom", None),
        ("substitutions.by_substitute", "fig_by_substitute", None),
    ]),
    ("declines", "fig_declines", [("declines.by_month", "fig_by_month", "bar"), ("declines.reasons", "fig_reasons", None)]),
    ("mail_failures", "fig_mail_failures", [
        ("mail_failures.by_month", "fig_by_month", "bar"), ("mail_failures.by_kind", "fig_by_kind", None),
        ("mail_failures.reasons", "fig_reasons", None),
    ]),
]


def row_label(series: str, row: Row, p: dict[str, str]) -> str:
    """What a row is called on the page, in the reader's language."""
    if row.key is None:
        return p[f"fig_unnamed_{unnamed(series)}"]
    if series.endswith("by_status"):
        return p.get(f"status_{row.key}", row.key)
    if series.endswith("by_action"):
        return p.get(f"fig_action_{row.key}", row.key)
    if series == "durations.by_step":
        step, _, action = row.key.partition(" ")
        return p["fig_step"].format(step=step, action=p.get(f"fig_action_{action}", action))
    if series == "durations.completion":
        return p["fig_all"]
    if series.endswith("reasons") and row.key == "":
        return p["fig_no_reason"]
    return f"{row.label} ({row.key})" if row.label else row.key


def _chart(series: str, kind: str, rows: list[Row], p: dict[str, str]) -> dict[str, Any]:
    """What the page's script draws: labels and values (lead times in hours: median and p90)."""
    chart: dict[str, Any] = {"kind": kind, "labels": [row_label(series, row, p) for row in rows]}
    if kind == "times":
        hours = p["fig_hours"].format(n="").strip()
        chart["datasets"] = [
            {"label": f"{p['fig_median']} ({hours})", "values": [round((row.median_seconds or 0) / 3600, 2) for row in rows]},
            {"label": f"{p['fig_p90']} ({hours})", "values": [round((row.p90_seconds or 0) / 3600, 2) for row in rows]},
        ]
    else:
        chart["datasets"] = [{"label": p["fig_count"], "values": [row.count for row in rows]}]
    return chart


def page_context(figures: Figures, language: str, query: str) -> dict[str, Any]:
    """What ops_figures.html shows besides the portal's own: the figures, how rows, charts and times read."""
    p = portal_texts(language)
    return {
        "figures": figures, "sections": SECTIONS, "query": ("?" + query) if query else "",
        "label": lambda series, row: row_label(series, row, p),
        "chart": lambda series, kind: _chart(series, kind, figures.series[series], p),
        "duration": lambda seconds: short_duration(seconds, p, language in ("nl", "fr")),
    }


@functools.cache
def _asset(name: str) -> bytes:
    return (_STATIC / _ASSETS[name]).read_bytes()


Page = Callable[[Request, Visitor], Awaitable[Response]]
Export = Callable[[Request, str, str], Awaitable[Response]]  # the request, the org, the language of its words


async def _operators_only(auth: PortalAuth, request: Request, page: Page) -> Response:
    """The page for a signed-in operator; sign-in first without a session; 404 for anyone else."""
    visitor = await auth.visitor(request)
    if visitor is None:
        return auth.sign_in_first(request)
    if not visitor.person.operator:
        language = visitor.person.language
        return auth.message(request, language, portal_texts(language)["fig_not_found"], visitor=visitor, status=404)
    return await page(request, visitor)


async def _for_operators(auth: PortalAuth, request: Request, export: Export) -> Response:
    """An export for a script with an API key of the ``operate`` scope, or for a signed-in operator; 401 for
    neither, 403 for a key without the scope, 404 for a signed-in person who is no operator."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        found = await find_key(auth.deps.pool(), key.strip())
        if found is None or found.org != auth.deps.org_at(request):
            return PlainTextResponse("Unknown or revoked API key.", status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if not found.allows("operate"):
            return PlainTextResponse(f"The key `{found.name}` lacks the `operate` scope.", status_code=403)
        asked = request.query_params.get("lang", "")
        return await export(request, found.org, asked if asked in LANGUAGES else LANGUAGES[0])
    visitor = await auth.visitor(request)
    if visitor is None:
        return PlainTextResponse("Sign in first, or send an API key.", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    if not visitor.person.operator:
        return PlainTextResponse("Not found.", status_code=404)
    return await export(request, visitor.person.org, visitor.person.language)


async def _read(auth: PortalAuth, request: Request, org: str) -> Figures:
    """The figures the query asks for; PeriodRefused when its period cannot be shown."""
    query, timezone = request.query_params, auth.deps.stamping.timezone
    department = query.get("department", "").strip()[:200] or None
    now = auth.deps.now()
    period = parse_period(query.get("from"), query.get("to"), now.astimezone(ZoneInfo(timezone)).date())
    async with auth.deps.pool().acquire() as conn:
        return await FiguresReader(conn).figures(org, period, department, timezone, now)


def _dashboard(router: APIRouter, auth: PortalAuth) -> None:
    @router.get("/p/ops/figures", response_class=HTMLResponse)
    async def dashboard(request: Request) -> Response:
        """The figures of a period (and department) as charts and tables."""

        async def page(request: Request, visitor: Visitor) -> Response:
            language = visitor.person.language
            p = portal_texts(language)
            try:
                figures = await _read(auth, request, visitor.person.org)
            except PeriodRefused:
                return auth.message(request, language, p["fig_bad_period"], visitor=visitor, status=400)
            context = page_context(figures, language, str(request.url.query))
            response = auth.page(request, "ops_figures.html", language, visitor=visitor, **context)
            response.headers["Content-Security-Policy"] = _CSP
            return response

        return await _operators_only(auth, request, page)

    @router.get("/p/ops/figures/assets/{name}")
    async def asset(name: str) -> Response:
        """The dashboard's scripts (the same for everyone: code, no figures)."""
        if name not in _ASSETS:
            return PlainTextResponse("Not found.", status_code=404)
        headers = {"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"}
        return Response(_asset(name), media_type="text/javascript", headers=headers)


def _exports(router: APIRouter, auth: PortalAuth) -> None:
    @router.get("/p/ops/figures.json")
    async def figures_json(request: Request) -> Response:
        """The figures as JSON: the same filters as the page (from, to, department). For a signed-in operator, or a
        script with an API key of the ``operate`` scope (`Authorization: Bearer <key>`)."""

        async def answer(request: Request, org: str, language: str) -> Response:
            try:
                figures = await _read(auth, request, org)
            except PeriodRefused as refused:
                return JSONResponse({"error": str(refused)}, status_code=400)
            return JSONResponse(figures.as_json(), headers={"Cache-Control": "no-store"})

        return await _for_operators(auth, request, answer)

    @router.get("/p/ops/figures.csv")
    async def figures_csv(request: Request) -> Response:
        """The figures as one CSV table (figure, key, label, count, median, p90, oldest), the same filters and callers
        as the JSON (a key's words are in ``lang``: nl, fr or en)."""

        async def answer(request: Request, org: str, language: str) -> Response:
            p = portal_texts(language)
            try:
                figures = await _read(auth, request, org)
            except PeriodRefused as refused:
                return PlainTextResponse(str(refused), status_code=400)
            text = csv_text(figures, {"hidden": p["fig_unnamed_hidden"], "none": p["fig_unnamed_none"]})
            name = f"paraaf-figures-{figures.period.start}-{figures.period.end}.csv"
            headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
                       "X-Content-Type-Options": "nosniff"}
            return Response(text.encode(), media_type="text/csv; charset=utf-8", headers=headers)

        return await _for_operators(auth, request, answer)


def figures_routes(auth: PortalAuth) -> APIRouter:
    router = APIRouter(tags=["figures"])
    _exports(router, auth)
    _dashboard(router, auth)
    return router

"""Intake's HTTP API. Only health for now: document reads wait for the
visibility rules (DESIGN.md "Visibility")."""

from collections.abc import Callable

import asyncpg
from fastapi import FastAPI

from shared.http import base_app

__all__ = ["build_http"]


def build_http(pool: Callable[[], asyncpg.Pool], *, docs: bool = False) -> FastAPI:
    return base_app("intake", pool, docs=docs)

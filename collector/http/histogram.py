"""``GET /v1/histogram``: records per time bucket stacked by level, one JSON object (see
``collector.query.histogram``); the filters are those of ``/v1/search``."""

from __future__ import annotations

from aiohttp import web

from collector.http.keys import STORE, in_pool
from collector.http.scanjob import run_scan
from collector.http.stream import json_answer
from collector.query import histogram as engine
from collector.query.selection import select
from wharf.api import HistogramRequest


async def histogram(request: web.Request) -> web.Response:
    """``{"since", "until", "step", "levels", "buckets": [{"ts", "counts"}], "total",
    "stats"}``."""
    store = request.app[STORE]
    spec = HistogramRequest.from_params(request.query.items())
    selection = await in_pool(request, select, store, spec)  # a bad filter: 400 here
    answer = await run_scan(request, engine.histogram, store, spec, selection)
    return json_answer(answer)

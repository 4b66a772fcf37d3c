"""``GET /v1/facets``: the top values of one field over every matching record, one JSON object
(see ``collector.query.facets``); the filters are those of ``/v1/search``."""

from __future__ import annotations

from aiohttp import web

from collector.http.keys import STORE, in_pool
from collector.http.scanjob import run_scan
from collector.http.stream import json_answer
from collector.query import facets as engine
from collector.query.selection import select
from wharf.api import FacetsRequest


async def facets(request: web.Request) -> web.Response:
    """``{"field", "total", "missing", "distinct", "capped", "other", "values": [{"value",
    "count"}], "stats"}``."""
    store = request.app[STORE]
    spec = FacetsRequest.from_params(request.query.items())
    selection = await in_pool(request, select, store, spec)  # a bad filter: 400 here
    answer = await run_scan(request, engine.facets, store, spec, selection)
    return json_answer(answer)

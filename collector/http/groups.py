"""``/v1/groups``: consumer groups' committed offsets, commits and resets."""

from __future__ import annotations

import msgspec
from aiohttp import web

from collector import groups
from collector.http.keys import GROUPS, STORE, in_pool
from collector.http.stream import json_answer
from wharf.api import CommitRequest, GroupList, NoParams, ResetRequest


async def list_groups(request: web.Request) -> web.Response:
    """``GET /v1/groups``."""
    NoParams.from_params(request.query.items())
    names = await in_pool(request, request.app[GROUPS].names)
    return json_answer(GroupList(names))


async def describe_group(request: web.Request) -> web.Response:
    """``GET /v1/groups/{group}``."""
    NoParams.from_params(request.query.items())
    app = request.app
    group = request.match_info["group"]
    return json_answer(await in_pool(request, groups.describe, app[STORE], app[GROUPS], group))


async def commit(request: web.Request) -> web.Response:
    """``POST /v1/groups/{group}/commit`` ``{"topic", "partition", "offset"}``."""
    app = request.app
    req = msgspec.json.decode(await request.read(), type=CommitRequest)
    group = request.match_info["group"]
    return json_answer(await in_pool(request, groups.commit, app[STORE], app[GROUPS], group, req))


async def reset(request: web.Request) -> web.Response:
    """``POST /v1/groups/{group}/reset`` ``{"topic", "to_offset" | "to_time" | "to"}``."""
    app = request.app
    req = msgspec.json.decode(await request.read(), type=ResetRequest)
    group = request.match_info["group"]
    return json_answer(await in_pool(request, groups.reset, app[STORE], app[GROUPS], group, req))

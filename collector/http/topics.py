"""``/v1/topics``: list, describe, create, delete, compact."""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from collector.http.keys import CONFIG, STORE, in_pool
from collector.http.stream import json_answer
from collector.query.describe import all_topics, topic_sizes
from wharf.api import CreateTopic, NoParams, TopicList
from wharf.errors import InvalidArgument
from wharf.topics import TopicConfig


async def list_topics(request: web.Request) -> web.Response:
    """``GET /v1/topics``: every topic with its sizes."""
    NoParams.from_params(request.query.items())
    topics = await in_pool(request, all_topics, request.app[STORE])
    return json_answer(TopicList(topics))


async def describe_topic(request: web.Request) -> web.Response:
    """``GET /v1/topics/{topic}``."""
    NoParams.from_params(request.query.items())
    name = request.match_info["topic"]
    return json_answer(await in_pool(request, topic_sizes, request.app[STORE], name))


async def create_topic(request: web.Request) -> web.Response:
    """``POST /v1/topics`` ``{"name", "partitions"?, "retention_ms"?, ...}`` -> 201 topic."""
    app = request.app
    req = msgspec.json.decode(await request.read(), type=CreateTopic)
    settings = msgspec.structs.asdict(app[CONFIG].topic_defaults)
    settings.update({k: v for k, v in msgspec.structs.asdict(req).items() if v is not None})
    del settings["name"]
    try:
        config = msgspec.convert(settings, TopicConfig)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"topic {req.name!r}: {exc}") from None
    store = app[STORE]
    await in_pool(request, store.create_topic, req.name, config)
    return json_answer(await in_pool(request, store.describe, req.name), status=201)


async def delete_topic(request: web.Request) -> web.Response:
    """``DELETE /v1/topics/{topic}``."""
    name = request.match_info["topic"]
    await in_pool(request, request.app[STORE].delete_topic, name)
    return web.json_response({"deleted": name})


async def compact_topic(request: web.Request) -> web.Response:
    """``POST /v1/topics/{topic}/compact``: roll the active segments and compact every sealed
    one now; answers when done (``CompactResult``)."""
    NoParams.from_params(request.query.items())
    name = request.match_info["topic"]
    # Minutes for a big topic: a thread of its own, not one of the pool's for short reads.
    return json_answer(await asyncio.to_thread(request.app[STORE].compact, name))

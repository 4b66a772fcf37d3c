"""The collector's HTTP API (aiohttp): one module per resource, every route in ``app``.

Handlers only parse requests into the typed API (``wharf.api``), call the query engine or the
storage off the event loop, and write JSON or NDJSON rows. See ``collector.http.app`` for the
routes.
"""

from collector.http.app import SessionsProvider, ingest_sessions, make_app
from collector.listener import Listening, serve

__all__ = ["Listening", "SessionsProvider", "ingest_sessions", "make_app", "serve"]

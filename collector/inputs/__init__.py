"""Network inputs: what hosts already send — syslog, Fluent forward, OTLP/HTTP logs, Loki push
— turned into records and appended through the storage interface (so they work unchanged on
the cluster backend). Configured as ``[[inputs]]`` in ``collector.toml``.

Each input is a module with one class built from an ``InputContext`` (``collector.inputs.base``):
the protocol's decoding is a pure core (bytes in, records or a precise error out), the class is
the thin I/O around it. Every input hands its records to its ``Sink`` (``collector.inputs.sink``):
batches per partition, durable before acknowledged, memory bounded by ``max_pending_bytes``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from collector.config import CollectorConfig, InputSettings
from collector.inputs.base import Input, InputContext, Tokens
from collector.inputs.sink import Sink
from collector.metrics import Metrics
from collector.storage.interface import Storage
from wharf.errors import InvalidArgument

__all__ = ["Inputs"]

log = logging.getLogger(__name__)

# The class of each input type: ``module:Class`` under this package (imported when configured,
# so a collector without inputs loads none of their libraries).
IMPLEMENTATIONS: Final = {
    "syslog": "syslog:SyslogInput",
    "forward": "forward:ForwardInput",
    "otlp": "otlp:OtlpInput",
    "loki": "loki:LokiInput",
}
# Threads that build the inputs' batches (encode and compress): off the event loop.
BUILD_WORKERS: Final = 2


def _implementation(kind: str) -> type:
    module, _, name = IMPLEMENTATIONS[kind].partition(":")
    try:
        cls: type = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    except ImportError as exc:  # a library of the input missing from this installation
        raise InvalidArgument(f"[[inputs]] type {kind!r} cannot be loaded: {exc}") from exc
    return cls


class _Running:
    def __init__(self, ctx: InputContext, impl: Input) -> None:
        self.ctx = ctx
        self.impl = impl
        self.port = 0


class Inputs:
    """Every configured input of one collector, started and stopped together."""

    def __init__(
        self,
        config: CollectorConfig,
        store: Storage,
        metrics: Metrics,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.ssl_context = ssl_context
        self.tokens = Tokens(config.auth.write_tokens)
        self.pool = ThreadPoolExecutor(BUILD_WORKERS, thread_name_prefix="input-build")
        self._running: list[_Running] = []

    def _context(self, settings: InputSettings) -> InputContext:
        counters = self.metrics.input_counters(settings.label, settings.type)
        sink = Sink(
            self.store,
            settings.topic_name,
            counters,
            self.pool,
            linger_s=settings.linger_ms / 1000,
            max_pending_bytes=settings.max_pending_bytes,
        )
        return InputContext(
            settings=settings,
            sink=sink,
            counters=counters,
            ssl_context=self.ssl_context if settings.tls else None,
            tokens=self.tokens,
        )

    async def start(self) -> None:
        """Start every input (its topic created first); on a failure, stop those started and
        raise."""
        try:
            for settings in self.config.inputs:
                ctx = self._context(settings)
                await ctx.sink.start()
                running = _Running(ctx, _implementation(settings.type)(ctx))
                self._running.append(running)
                running.port = await running.impl.start()
                host = settings.listen_address.rpartition(":")[0]
                log.info(
                    "input %s ready: %s %s:%d -> topic %s",
                    settings.label,
                    settings.transport,
                    host,
                    running.port,
                    settings.topic_name,
                )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop accepting everywhere, then append what was received and wait for it."""
        running, self._running = self._running, []
        await asyncio.gather(*(r.impl.close() for r in running), return_exceptions=True)
        await asyncio.gather(*(r.ctx.sink.close() for r in running), return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.pool.shutdown, True)

    def set_write_tokens(self, tokens: list[str]) -> None:
        """New ``[auth] write_tokens`` for the HTTP inputs (a reload)."""
        self.tokens.set(tokens)

    def ports(self) -> dict[str, int]:
        """Each input's bound port, by label."""
        return {r.ctx.label: r.port for r in self._running}

    def status(self) -> list[dict[str, object]]:
        """One row per input for ``/v1/status`` (call on the event loop)."""
        return [
            {
                "name": r.ctx.label,
                "type": r.ctx.settings.type,
                "protocol": r.ctx.settings.transport,
                "listen": r.ctx.settings.listen_address,
                "port": r.port,
                "topic": r.ctx.settings.topic_name,
                **r.ctx.counters.snapshot(),
                "pending_bytes": r.ctx.sink.budget.used,
            }
            for r in self._running
        ]

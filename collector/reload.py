"""SIGHUP: re-read ``collector.toml`` and apply what can change while the collector serves.

The reload is narrow on purpose. Two things change live:

- ``[auth]`` tokens: the next HTTP request and the next ingest handshake check the new lists
  (connections already past their handshake stay authenticated, as a shipper's session is);
- ``[tls]`` ``cert`` and ``key``: the files are read again even when their paths did not
  change, which is certificate rotation (certbot renews in place, then ``systemctl reload``).
  New connections on both listeners get the new certificate; open ones keep theirs.

Every other changed key (addresses, ``data_dir``, storage, search, topic defaults, limits,
``[cluster]``, ``tls.client_ca``, turning TLS on or off) is logged as taking effect at the next
restart, and the running value stays. A file that does not load or does not pass ``check()``,
and a certificate or key that does not load, are refused whole: nothing changes and the log
says why. Either way systemd gets ``RELOADING=1`` and then ``READY=1``.

The reload runs on the event loop, in the signal handler ``loop.add_signal_handler`` calls: the
file and the certificate are small, and nothing else runs while the settings change, so every
request and handshake sees either the old settings or the new ones, never a mix.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from collector.config import CollectorConfig
from wharf import sdnotify
from wharf.errors import InvalidArgument

if TYPE_CHECKING:
    from collector.server import Collector

log = logging.getLogger(__name__)

# The keys applied live, as dotted paths; every other changed key waits for a restart.
LIVE_KEYS = frozenset({"auth.write_tokens", "auth.read_tokens", "tls.cert", "tls.key"})


@dataclass
class ReloadPlan:
    """What a new config changes: the settings to run with, and the keys that changed."""

    config: CollectorConfig
    live: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` for every setting; a table that is absent (``[cluster]``) is one
    leaf with the value None."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def _flat(config: CollectorConfig) -> dict[str, Any]:
    return dict(_leaves(msgspec.to_builtins(config)))


def plan_reload(old: CollectorConfig, new: CollectorConfig) -> ReloadPlan:
    """Compare two configs (pure): the live keys come from ``new``, the rest stay ``old``'s."""
    before, after = _flat(old), _flat(new)
    absent = object()  # a key of a table only one side has
    changed = sorted(
        k for k in before.keys() | after.keys() if before.get(k, absent) != after.get(k, absent)
    )
    # A table added or removed whole ([cluster]) is named once, not key by key.
    changed = [k for k in changed if not any(k.startswith(f"{p}.") for p in changed)]
    # Certificate files are swapped on the running listeners' TLS context: there must be one
    # before and after. Turning TLS on or off needs new listeners, so a restart.
    tls_live = old.tls.enabled and new.tls.enabled
    live = [k for k in changed if k in LIVE_KEYS and (tls_live or not k.startswith("tls."))]
    restart = [k for k in changed if k not in live]
    tls = old.tls
    if tls_live:
        tls = msgspec.structs.replace(old.tls, cert=new.tls.cert, key=new.tls.key)
    return ReloadPlan(msgspec.structs.replace(old, auth=new.auth, tls=tls), live, restart)


def _fingerprint(cert_file: str) -> str:
    """SHA-256 of the first certificate in a PEM file, as ``openssl x509 -fingerprint`` shows
    it (what an operator compares with the file they just installed)."""
    with open(cert_file) as f:
        pem = f.read()
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[start:end])).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _load_certificate(context: ssl.SSLContext, cert: str, key: str) -> str:
    """Load ``cert`` and ``key`` into ``context``: first into a scratch context, so a bad file
    (unreadable, not PEM, a key that does not match) leaves the serving context untouched."""
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    context.load_cert_chain(cert, key)
    return _fingerprint(cert)


def reload_collector(
    collector: Collector, load: Callable[[], CollectorConfig]
) -> ReloadPlan | None:
    """Re-read the config with ``load`` and apply it to ``collector`` (see the module
    docstring). Returns the plan applied, or None when the new config was refused."""
    sdnotify.notify("RELOADING=1", f"MONOTONIC_USEC={sdnotify.monotonic_usec()}")
    try:
        return _reload(collector, load)
    finally:
        sdnotify.notify("READY=1")


def _reload(collector: Collector, load: Callable[[], CollectorConfig]) -> ReloadPlan | None:
    running = collector.config
    try:
        new = load()
        new.check()  # what the next restart would refuse is refused now
        plan = plan_reload(running, new)
        plan.config.check()  # new tokens with the running addresses
    except InvalidArgument as exc:
        log.error("reload refused, the running config stays: %s", exc)
        return None
    fingerprint = None
    if plan.config.tls.enabled and collector.ssl_context is not None:
        try:
            fingerprint = _load_certificate(
                collector.ssl_context, plan.config.tls.cert, plan.config.tls.key
            )
        except (OSError, ValueError, ssl.SSLError) as exc:
            log.error("reload refused, the running config stays: tls: %s", exc)
            return None
    # The one config object is shared by the ingest server and the HTTP application (the auth
    # middleware reads it per request), so replacing its tables there reaches both. The struct
    # is frozen against accidents; this is the one deliberate change of a running config.
    msgspec.structs.force_setattr(running, "auth", plan.config.auth)
    msgspec.structs.force_setattr(running, "tls", plan.config.tls)
    collector.ingest.set_write_tokens(running.auth.write_tokens)
    collector.inputs.set_write_tokens(running.auth.write_tokens)
    for key in plan.restart_needed:
        log.warning("reload: %s changed; it takes effect at the next restart", key)
    log.info(
        "reloaded: %s%s",
        ", ".join(plan.live) + " applied" if plan.live else "no live setting changed",
        f"; tls certificate sha256 {fingerprint}" if fingerprint else "",
    )
    return plan

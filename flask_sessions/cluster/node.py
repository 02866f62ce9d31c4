"""A browser host: ``python -m flask_sessions host --host H --port P``.

One process that owns Chromium, the contexts, the runtime loop and the reaper, and serves
the internal API (``hostapi.py``) that fronts call with the cluster secret. With
``SESSIONS_REGISTRY_URL`` it registers in Redis, renews that every heartbeat, and writes
each session's record through; without, fronts list it in ``SESSIONS_HOSTS``.
"""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask

from flask_sessions.clock import Clock, system_clock
from flask_sessions.cluster.hostapi import create_host_app
from flask_sessions.cluster.registry import RedisPublisher, record_json
from flask_sessions.config import Settings
from flask_sessions.front.auth import TokenRegistry
from flask_sessions.front.metrics import Metrics
from flask_sessions.host.cdp import CdpProxy
from flask_sessions.host.egress import proxy_for
from flask_sessions.host.local import LocalBackend
from flask_sessions.host.manager import SessionManager, SessionRecord
from flask_sessions.host.runtime import BrowserRuntime

log = logging.getLogger("flask_sessions")

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_host_id() -> str:
    """8 random characters; the first 8 of every session id this host makes."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


@dataclass
class Host:
    """A host's parts: its manager, its internal app and (with Redis) its publisher."""

    host_id: str
    url: str
    manager: SessionManager
    backend: LocalBackend
    app: Flask
    publisher: RedisPublisher | None

    @classmethod
    def build(cls, settings: Settings, url: str, clock: Clock | None = None) -> Host:
        if not settings.cluster_secret:
            raise ValueError(
                "a host needs SESSIONS_CLUSTER_SECRET (16+ characters, the same in its fronts)"
            )
        if not settings.profile_key:  # profiles (issue 18): every host opens what any saved
            raise ValueError(
                "a host needs SESSIONS_PROFILE_KEY (16+ characters, the same on every host: "
                "profiles are encrypted with it); make one with python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'"
            )
        host_id = new_host_id()
        egress = proxy_for(settings.egress_policy(), settings.egress_hosts)
        runtime = BrowserRuntime(settings.browser_path, settings.browser_args, egress=egress)
        metrics = Metrics()
        manager = SessionManager(
            settings,
            runtime,
            clock or system_clock,
            events=metrics.session_event,
            id_prefix=host_id,
        )
        metrics.watch(manager)
        backend = LocalBackend(manager)
        app = create_host_app(backend, settings.cluster_secret, host_id, metrics)
        cdp = None
        if settings.cdp:
            # Clients attach here directly. A bearer token works when the host shares the
            # fronts' SESSIONS_TOKENS; otherwise a ticket minted through a front does.
            tokens = TokenRegistry(settings.tokens)
            cdp = CdpProxy(app, settings, manager, tokens.principal)

        def cdp_base() -> str | None:
            if cdp is None or cdp.port is None:
                return None
            return settings.cdp_public_url or f"ws://{urlsplit(url).hostname}:{cdp.port}"

        publisher = None
        if settings.registry_url:

            def info() -> dict[str, object]:
                return {"url": url, "cdp_base": cdp_base(), **manager.load_now()}

            def snapshot() -> list[dict[str, object]]:
                now = manager.clock()
                return [
                    record_json(r.to_response(now), host_id, r.principal) for r in manager.records()
                ]

            publisher = RedisPublisher(
                settings.registry_url,
                host_id,
                settings.heartbeat_seconds,
                settings.retention_minutes * 60,
                info,
                snapshot,
                manager.clock,
            )

            def changed(record: SessionRecord) -> None:
                assert publisher is not None
                data = record_json(record.to_response(manager.clock()), host_id, record.principal)
                publisher.changed(data)

            manager.on_record = changed
        return cls(host_id, url, manager, backend, app, publisher)

    def start(self) -> None:
        """Launch Chromium and, with Redis, start the heartbeat."""
        self.manager.ensure_started(launch_browser=True)
        if self.publisher is not None:
            self.manager.runtime.spawn(self.publisher.run())
        log.info("flask_sessions: host %s serving on %s", self.host_id, self.url)

    def shutdown(self) -> None:
        """Close every session (records written through), deregister, stop Chromium."""
        runtime = self.manager.runtime
        runtime.begin_shutdown()
        if runtime.loop_started:
            try:
                runtime.submit(self.manager._close_all("host shut down"), 20)
                if self.publisher is not None:
                    runtime.submit(self.publisher.stop(), 5)
            except Exception:  # shutdown goes on
                log.exception("flask_sessions: closing the host's sessions failed")
        self.manager.shutdown()

"""The shared registry in Redis (redis-py): hosts and session records across processes.

Keys (one Redis, no home-made store or protocol):

- ``fs:hosts``: the set of host ids ever registered;
- ``fs:host:<id>``: a host's JSON (url, capacity, active, free, retry_after), renewed every
  heartbeat with a TTL of two heartbeats: a host that stops renewing drops out;
- ``fs:host-seen``: a hash, host id -> JSON ``{url, seen_at}`` of its last heartbeat, kept
  after the host is gone so a dead host's sessions can say which host it was and when it was
  last heard from;
- ``fs:session:<sid>``: a session's record as JSON (the API's fields, plus ``host_id`` and
  ``principal``), written through at every start, access and end; ended ones expire after
  the retention window;
- ``fs:principal:<p>``: a sorted set of that principal's session ids by creation time.

Fronts read with :class:`RedisRegistry` (sync client, Flask threads); a host writes with
:class:`RedisPublisher` (``redis.asyncio`` on its runtime loop, so writes never block a
request). A host re-publishes everything when its own key was gone (Redis restarted or was
unreachable), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio as aioredis

from flask_sessions.schemas import SessionResponse, Status
from flask_sessions.timefmt import iso_datetime

log = logging.getLogger("flask_sessions")

HOSTS = "fs:hosts"
HOST_SEEN = "fs:host-seen"


def host_key(host_id: str) -> str:
    return f"fs:host:{host_id}"


def session_key(session_id: str) -> str:
    return f"fs:session:{session_id}"


def principal_key(principal: str) -> str:
    return f"fs:principal:{principal}"


# One round trip for every live host's JSON.
_LIVE_HOSTS = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', 'fs:host:' .. id)
  if v then table.insert(out, v) end
end
return out
"""


@dataclass
class HostInfo:
    """One host as placement sees it."""

    host_id: str
    url: str
    capacity: int
    active: int
    free: int
    retry_after: int
    cdp_base: str | None = None  # ws(s)://… of the host's CDP WebSocket server, if it has one

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostInfo:
        return cls(
            host_id=str(data["host_id"]),
            url=str(data["url"]),
            capacity=int(data["capacity"]),
            active=int(data["active"]),
            free=int(data["free"]),
            retry_after=int(data.get("retry_after", 1)),
            cdp_base=data.get("cdp_base") or None,
        )


@dataclass(frozen=True)
class HostSeen:
    """A host's URL and the time of its last heartbeat."""

    url: str
    seen_at: datetime

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostSeen:
        return cls(url=str(data["url"]), seen_at=datetime.fromisoformat(data["seen_at"]))


def dead_host_reason(host_id: str, seen: HostSeen | None) -> str:
    """Why a session of a host that stopped answering ended, naming the host so that an
    operator can find it: ``the host znap6dsk (http://10.0.0.7:8765) stopped answering at
    2026-12-07T12:03:41Z (its last heartbeat); start a new session``."""
    if seen is None:
        where = f"the host {host_id} that held this session stopped answering"
    else:
        at = seen.seen_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        where = (
            f"the host {host_id} ({seen.url}) that held this session stopped answering at "
            f"{at} (its last heartbeat)"
        )
    return f"{where}; start a new session"


class RegistryUnavailable(Exception):
    """Redis did not answer."""


class RedisRegistry:
    """What fronts read: live hosts, session records, a principal's sessions."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )
        self._live_hosts = self.client.register_script(_LIVE_HOSTS)
        self.round_trips = 0  # counted for the bench

    def _call(self, fn: Callable[[], Any]) -> Any:
        self.round_trips += 1
        try:
            return fn()
        except redis.RedisError as exc:
            raise RegistryUnavailable(
                f"the session registry (Redis) is unreachable: {exc}"
            ) from None

    def hosts(self) -> list[HostInfo]:
        raw = self._call(lambda: self._live_hosts(keys=[HOSTS]))
        return [HostInfo.from_json(json.loads(item)) for item in raw]

    def host_alive(self, host_id: str) -> bool:
        return bool(self._call(lambda: self.client.exists(host_key(host_id))))

    def record(self, session_id: str) -> dict[str, Any] | None:
        raw = self._call(lambda: self.client.get(session_key(session_id)))
        return json.loads(raw) if raw else None

    def hosts_seen(self, host_ids: list[str]) -> dict[str, HostSeen]:
        """Where and when each of ``host_ids`` was last heard from (one round trip)."""
        if not host_ids:
            return {}
        raws = self._call(lambda: self.client.hmget(HOST_SEEN, host_ids))
        return {
            host_id: HostSeen.from_json(json.loads(raw))
            for host_id, raw in zip(host_ids, raws, strict=True)
            if raw
        }

    def records(self, principal: str) -> list[dict[str, Any]]:
        """The principal's records, oldest first (two round trips)."""
        ids = self._call(lambda: self.client.zrange(principal_key(principal), 0, -1))
        if not ids:
            return []
        raws = self._call(lambda: self.client.mget([session_key(i) for i in ids]))
        return [json.loads(raw) for raw in raws if raw]

    def close(self) -> None:
        self.client.close()


def record_json(response: SessionResponse, host_id: str, principal: str) -> dict[str, Any]:
    # viewer_url holds a live ticket: it stays on the host (issue 20)
    data = response.model_dump(mode="json", exclude={"screenshot", "page", "viewer_url"})
    data["host_id"] = host_id
    data["principal"] = principal
    return data


def response_from_record(
    data: dict[str, Any],
    now: datetime,
    dead_host: str | None = None,
    seen: HostSeen | None = None,
) -> SessionResponse:
    """A stored record as the API shows it.

    ``dead_host``: the id of the record's host, which stopped answering; an active record then
    reads ``error``, with the host's URL and last heartbeat (``seen``) in ``error``, and that
    heartbeat as ``closed_at``.
    """
    fields = {k: v for k, v in data.items() if k in SessionResponse.model_fields}
    created = datetime.fromisoformat(fields["created_at"])
    if dead_host and fields.get("status") == Status.active.value:
        fields["status"] = Status.error.value
        fields["error"] = dead_host_reason(dead_host, seen)
        fields["closed_at"] = None
        if seen is not None:
            last = max(seen.seen_at, created, datetime.fromisoformat(fields["last_accessed_at"]))
            fields["closed_at"] = iso_datetime(last)
    end = datetime.fromisoformat(fields["closed_at"]) if fields.get("closed_at") else now
    fields["duration"] = max(timedelta(0), end - created)
    return SessionResponse.model_validate(fields)


class RedisPublisher:
    """A host's side: heartbeat its registration, write records through, re-publish.

    Runs on the host's runtime loop. ``snapshot()`` returns every record the host holds
    (as JSON dicts); ``info()`` the host's registration JSON.
    """

    def __init__(
        self,
        url: str,
        host_id: str,
        heartbeat_seconds: float,
        retention_seconds: float,
        info: Callable[[], dict[str, Any]],
        snapshot: Callable[[], list[dict[str, Any]]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True
        )
        self.host_id = host_id
        self.interval = heartbeat_seconds
        self.retention = max(1, int(retention_seconds))
        self._info = info
        self._snapshot = snapshot
        self._clock = clock
        self._dirty: dict[str, dict[str, Any]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._up = True
        self.stopped = False

    def changed(self, data: dict[str, Any]) -> None:
        """A record changed (on the loop): write it soon, coalesced with others."""
        self._dirty[data["session_id"]] = data
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._write_dirty())

    async def _write_dirty(self) -> None:
        await asyncio.sleep(0)  # let a burst of changes coalesce into one pipeline
        batch, self._dirty = self._dirty, {}
        try:
            await self._write(list(batch.values()))
        except redis.RedisError as exc:
            self._down(exc)  # the next heartbeat that works re-publishes everything

    async def _write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        pipe = self.client.pipeline(transaction=False)
        # The host's load changed with its sessions: placement reads it fresh, not a
        # heartbeat late (XX: never re-create a registration that lapsed).
        info = json.dumps({"host_id": self.host_id, **self._info()})
        pipe.set(host_key(self.host_id), info, px=int(self.interval * 2 * 1000), xx=True)
        for data in records:
            created = datetime.fromisoformat(data["created_at"]).timestamp()
            ttl = None if data["status"] == Status.active.value else self.retention
            pipe.set(session_key(data["session_id"]), json.dumps(data), ex=ttl)
            pipe.zadd(principal_key(data["principal"]), {data["session_id"]: created})
        await pipe.execute()

    async def heartbeat(self) -> None:
        """One renewal; re-publishes every record when the registration had lapsed."""
        data = {"host_id": self.host_id, **self._info()}
        ttl_ms = int(self.interval * 2 * 1000)
        previous = await self.client.set(
            host_key(self.host_id), json.dumps(data), px=ttl_ms, get=True
        )
        seen = {"url": data["url"], "seen_at": iso_datetime(self._clock())}
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(HOSTS, self.host_id)
        pipe.hset(HOST_SEEN, self.host_id, json.dumps(seen))
        await pipe.execute()
        if previous is None:  # first beat, Redis restarted, or we were away too long
            await self._write(self._snapshot())
            if not self._up:
                log.info("flask_sessions: the registry is back; re-published this host's sessions")
        self._up = True

    async def run(self) -> None:
        while not self.stopped:
            try:
                await self.heartbeat()
            except redis.RedisError as exc:
                self._down(exc)
            await asyncio.sleep(self.interval)

    def _down(self, exc: Exception) -> None:
        if self._up:
            log.warning("flask_sessions: the registry (Redis) is unreachable: %s", exc)
        self._up = False

    async def stop(self) -> None:
        """Deregister (so fronts stop placing here at once) and close the client."""
        self.stopped = True
        with contextlib.suppress(redis.RedisError):
            await self._write(list(self._dirty.values()))
            await self.client.delete(host_key(self.host_id))
        await self.client.aclose()

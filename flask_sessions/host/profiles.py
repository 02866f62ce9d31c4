"""Profiles: a principal's named storage states, encrypted at rest, loadable by any host.

A profile is a Playwright storage state (cookies, localStorage, IndexedDB) that belongs to one
principal. A start may load one (``profile {id, persist}``); a persisting session writes its
state back when it ends normally (close, idle timeout, lifetime, shutdown) or on
``POST /session/<id>/profile/save``. One session at a time may persist into a profile: the
lock is a lease in the store itself, so it holds across hosts.

**One store interface, two implementations**, chosen by URI as Flask-Limiter chooses its
storage (``SESSIONS_PROFILE_STORE``): :class:`FileProfileStore` (``file:///path``; the default
in embedded mode, under the platform's user data directory) and :class:`RedisProfileStore`
(``redis://…``; the default when ``SESSIONS_REGISTRY_URL`` is set, so a profile saved on one
host loads on another). A store only ever sees sealed bytes, owners as hashes of principals
and ids this module generated and checked: never a key, a principal's name or plaintext.

**Encryption** (:class:`KeyRing`): AES-256-GCM (``cryptography``), a fresh 96-bit nonce per
blob, and authenticated data binding each blob to its principal, its profile id and what it
is (metadata or state), so a blob copied to another profile or principal does not open. The
AES key comes from ``SESSIONS_PROFILE_KEY`` through scrypt, not HKDF: the setting is typed
by people and may be a passphrase, and whoever holds a copy of the store (a Redis dump, a
backup) can test guesses offline; scrypt makes each guess cost ~16 MiB and tens of
milliseconds where HKDF would cost nanoseconds. It runs once per key per process (cached),
so no save pays for it. Rotation: several keys, newest first; a blob names its key by an
8-byte id (a hash of the derived key), is opened with that key, and is written again with
the first. A blob whose key is not configured, or that fails authentication, is a clear
503, never garbage state.

The standalone server without a key makes one beside its file store (0600) and logs where;
a host (``python -m flask_sessions host``) and a Redis store refuse to start without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import platformdirs
import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from playwright.async_api import Error as PlaywrightError

from flask_sessions.clock import Clock
from flask_sessions.config import Settings
from flask_sessions.errors import ProfileConflict, ProfileNotFound, ProfileUnavailable, TooLarge
from flask_sessions.profile_schemas import (
    PROFILE_ID_PATTERN,
    ProfileInfo,
    SessionProfile,
    StorageState,
    kept_state,
    state_bytes,
    state_domains,
)
from flask_sessions.timefmt import iso_datetime

if TYPE_CHECKING:
    from flask_sessions.host.live import LiveSession
    from flask_sessions.host.manager import SessionRecord
    from flask_sessions.schemas import StartRequest

log = logging.getLogger("flask_sessions")

T = TypeVar("T")
MB = 1024 * 1024
LEASE_SECONDS = 60.0  # a persist lock lapses this long after its holder stops renewing it
EMPTY_STATE: dict[str, Any] = {"cookies": [], "origins": []}
_ID = re.compile(PROFILE_ID_PATTERN)


# ------------------------------------------------------------------ the store


@dataclass
class Stored:
    """A profile as a store keeps it: sealed metadata, and (when asked for) the sealed state."""

    meta: bytes
    state: bytes | None = None


class ProfileStore(Protocol):
    """Where sealed profiles live. ``owner`` is a hash of the principal; ids are checked.

    ``lock`` takes (or renews) the persist lease for ``holder``: None when ``holder`` has
    it now, else the session that holds it.
    """

    where: str  # the store's URI, without credentials (for logs and messages)

    def put(self, owner: str, profile_id: str, meta: bytes, state: bytes) -> None: ...

    def get(self, owner: str, profile_id: str, with_state: bool) -> Stored | None: ...

    def ids(self, owner: str) -> list[str]: ...

    def delete(self, owner: str, profile_id: str) -> bool: ...

    def lock(self, owner: str, profile_id: str, holder: str, ttl: float) -> str | None: ...

    def unlock(self, owner: str, profile_id: str, holder: str) -> None: ...

    def holder(self, owner: str, profile_id: str) -> str | None: ...

    def close(self) -> None: ...


class StoreDown(Exception):
    """The store could not be read or written (Redis away, a disk error)."""


_MAGIC = b"FSP1"


class FileProfileStore:
    """``file:///path``: one file per profile (``<owner>/<id>.profile``: a header, the sealed
    metadata, the sealed state), replaced atomically (a temporary file, fsync, rename).
    Directories are created 0700 and files 0600. The persist lease is a small JSON file per
    profile, read and written under ``flock``, so servers sharing the directory agree.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.where = "file://" + self.root
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        if os.stat(self.root).st_mode & 0o077:
            log.warning(
                "flask_sessions: the profile store %s is readable by other users; profiles "
                "are encrypted, but chmod 700 it",
                self.root,
            )

    def _dir(self, owner: str, create: bool = False) -> str:
        path = os.path.join(self.root, _checked_owner(owner))
        if create:
            os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    def _file(self, owner: str, profile_id: str, suffix: str, create: bool = False) -> str:
        return os.path.join(self._dir(owner, create), _checked_id(profile_id) + suffix)

    def put(self, owner: str, profile_id: str, meta: bytes, state: bytes) -> None:
        target = self._file(owner, profile_id, ".profile", create=True)
        tmp = f"{target}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, _MAGIC + len(meta).to_bytes(4, "big") + meta)
                view = memoryview(state)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StoreDown(f"writing {target} failed: {exc}") from None

    def get(self, owner: str, profile_id: str, with_state: bool) -> Stored | None:
        try:
            with open(self._file(owner, profile_id, ".profile"), "rb") as f:
                head = f.read(8)
                if len(head) != 8 or head[:4] != _MAGIC:
                    raise StoreDown(f"{f.name} is not a profile file (damaged?)")
                meta = f.read(int.from_bytes(head[4:], "big"))
                return Stored(meta, f.read() if with_state else None)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreDown(f"reading a profile failed: {exc}") from None

    def ids(self, owner: str) -> list[str]:
        try:
            names = os.listdir(self._dir(owner))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreDown(f"listing profiles failed: {exc}") from None
        found = (n.removesuffix(".profile") for n in names if n.endswith(".profile"))
        return [i for i in found if _ID.match(i)]

    def delete(self, owner: str, profile_id: str) -> bool:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(owner, profile_id, ".lock"))
        try:
            os.unlink(self._file(owner, profile_id, ".profile"))
        except FileNotFoundError:
            return False
        return True

    @contextlib.contextmanager
    def _lease(self, owner: str, profile_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
        path = self._file(owner, profile_id, ".lock", create=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 4096)
            try:
                lease = json.loads(raw) if raw else {}
            except ValueError:
                lease = {}
            if not isinstance(lease, dict) or float(lease.get("until", 0)) < time.time():
                lease = {}
            yield fd, lease
        finally:
            os.close(fd)  # releases the flock

    @staticmethod
    def _write_lease(fd: int, lease: dict[str, Any]) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        if lease:
            os.write(fd, json.dumps(lease).encode())

    def lock(self, owner: str, profile_id: str, holder: str, ttl: float) -> str | None:
        with self._lease(owner, profile_id) as (fd, lease):
            current = lease.get("holder")
            if current not in (None, holder):
                return str(current)
            self._write_lease(fd, {"holder": holder, "until": time.time() + ttl})
            return None

    def unlock(self, owner: str, profile_id: str, holder: str) -> None:
        with contextlib.suppress(FileNotFoundError), self._lease(owner, profile_id) as (fd, lease):
            if lease.get("holder") == holder:
                self._write_lease(fd, {})

    def holder(self, owner: str, profile_id: str) -> str | None:
        if not os.path.exists(self._file(owner, profile_id, ".lock")):
            return None
        with self._lease(owner, profile_id) as (_fd, lease):
            current = lease.get("holder")
            return str(current) if current else None

    def close(self) -> None:
        pass


# Take the lease if it is free or already ours (renewing it); else answer its holder.
_LOCK = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisProfileStore:
    """``redis://…``: a hash per profile (``fs:profile:<owner>:<id>``: ``meta``, ``state``), a
    set of ids per owner (``fs:profiles:<owner>``), and the persist lease as a key with a TTL
    (``fs:profile-lock:<owner>:<id>``), taken and released by compare-and-set scripts."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        self.where = _without_password(url)
        self._lock = self.client.register_script(_LOCK)
        self._unlock = self.client.register_script(_UNLOCK)

    @staticmethod
    def _keys(owner: str, profile_id: str) -> tuple[str, str, str]:
        owner, profile_id = _checked_owner(owner), _checked_id(profile_id)
        return (
            f"fs:profile:{owner}:{profile_id}",
            f"fs:profiles:{owner}",
            f"fs:profile-lock:{owner}:{profile_id}",
        )

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.RedisError as exc:
            raise StoreDown(f"the profile store {self.where} is unreachable: {exc}") from None

    def put(self, owner: str, profile_id: str, meta: bytes, state: bytes) -> None:
        key, index, _ = self._keys(owner, profile_id)

        def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping={"meta": meta, "state": state})
            pipe.sadd(index, profile_id)
            pipe.execute()

        self._call(write)

    def get(self, owner: str, profile_id: str, with_state: bool) -> Stored | None:
        key = self._keys(owner, profile_id)[0]
        if with_state:
            meta, state = self._call(lambda: self.client.hmget(key, ["meta", "state"]))
        else:
            meta, state = self._call(lambda: self.client.hget(key, "meta")), None
        return None if meta is None else Stored(_raw(meta), None if state is None else _raw(state))

    def ids(self, owner: str) -> list[str]:
        index = f"fs:profiles:{_checked_owner(owner)}"
        found = (_text(m) for m in self._call(lambda: self.client.smembers(index)))
        return [i for i in found if _ID.match(i)]

    def delete(self, owner: str, profile_id: str) -> bool:
        key, index, lock = self._keys(owner, profile_id)

        def remove() -> Any:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key, lock)
            pipe.srem(index, profile_id)
            return pipe.execute()

        deleted, _ = self._call(remove)
        return bool(deleted)

    def lock(self, owner: str, profile_id: str, holder: str, ttl: float) -> str | None:
        lock = self._keys(owner, profile_id)[2]
        current = self._call(lambda: self._lock(keys=[lock], args=[holder, int(ttl * 1000)]))
        return _text(current) if current else None

    def unlock(self, owner: str, profile_id: str, holder: str) -> None:
        lock = self._keys(owner, profile_id)[2]
        self._call(lambda: self._unlock(keys=[lock], args=[holder]))

    def holder(self, owner: str, profile_id: str) -> str | None:
        current = self._call(lambda: self.client.get(self._keys(owner, profile_id)[2]))
        return _text(current) if current else None

    def close(self) -> None:
        self.client.close()


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _checked_id(profile_id: str) -> str:
    """A profile id as this module makes them; anything else never reaches a path or key."""
    if not _ID.match(profile_id):
        raise ValueError(f"not a profile id: {profile_id[:80]!r}")
    return profile_id


def _checked_owner(owner: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{32}", owner):
        raise ValueError("not an owner hash")
    return owner


def owner_of(principal: str) -> str:
    """The store's name for a principal: a hash (principals are never paths or keys)."""
    return hashlib.sha256(b"flask_sessions profile owner\0" + principal.encode()).hexdigest()[:32]


def _without_password(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//", url)


def default_store_uri(settings: Settings) -> str:
    """``SESSIONS_PROFILE_STORE``, else the registry's Redis, else the user data directory."""
    if settings.profile_store:
        return settings.profile_store
    if settings.registry_url:
        return settings.registry_url
    return "file://" + os.path.join(platformdirs.user_data_dir("flask_sessions"), "profiles")


def open_store(uri: str) -> ProfileStore:
    """The store a URI names: ``file:///path`` or ``redis://…`` (``rediss://``, ``unix://``)."""
    if uri.startswith("file://"):
        return FileProfileStore(uri.removeprefix("file://"))
    return RedisProfileStore(uri)


# ------------------------------------------------------------------ encryption

_SALT = b"flask_sessions profile key v1"
_VERSION = b"\x01"
_NONCE = 12


@lru_cache(maxsize=16)
def derive_key(secret: str) -> bytes:
    """The AES-256 key of a ``SESSIONS_PROFILE_KEY`` value: scrypt (N=2^14, r=8, p=1).

    The salt is fixed, so every host derives the same key from the same setting.
    """
    return Scrypt(salt=_SALT, length=32, n=2**14, r=8, p=1).derive(secret.encode())


def key_id(key: bytes) -> bytes:
    """8 bytes naming a derived key in each blob (nothing about the key can be learnt)."""
    return hashlib.sha256(b"flask_sessions key id\0" + key).digest()[:8]


class KeyRing:
    """Seal with the first key, open with whichever key a blob names.

    Example::

        ring = KeyRing(["new-key-…", "old-key-…"])
        blob = ring.seal(b"secret", b"context")
        ring.open(blob, b"context", "profile abc")  # b"secret"
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        derived = [derive_key(k) for k in keys]
        self._ids = [key_id(k) for k in derived]
        self._aes = dict(zip(self._ids, (AESGCM(k) for k in derived), strict=True))

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        first = self._ids[0]
        return _VERSION + first + nonce + self._aes[first].encrypt(nonce, plain, aad)

    def open(self, blob: bytes, aad: bytes, what: str) -> bytes:
        if len(blob) < 1 + 8 + _NONCE + 16 or blob[:1] != _VERSION:
            raise ProfileUnavailable(f"{what} is damaged in the profile store (not a sealed blob)")
        aes = self._aes.get(blob[1:9])
        if aes is None:
            raise ProfileUnavailable(
                f"{what} was encrypted with a key that is not in SESSIONS_PROFILE_KEY (key id "
                f"{blob[1:9].hex()}); add the key it was saved with after the newest one, or "
                "delete the profile"
            )
        try:
            return aes.decrypt(blob[9 : 9 + _NONCE], blob[9 + _NONCE :], aad)
        except InvalidTag:
            raise ProfileUnavailable(
                f"{what} fails authentication: it was changed at rest or copied from another "
                "profile; nothing of it is used"
            ) from None


def _aad(kind: str, principal: str, profile_id: str) -> bytes:
    return b"\0".join(
        [b"flask_sessions/profile/v1", kind.encode(), principal.encode(), profile_id.encode()]
    )


def generated_key(root: str) -> tuple[str, str, bool]:
    """The key kept beside a file store at ``root`` (made, 0600, if absent): (key, path,
    made now)."""
    path = os.path.abspath(root).rstrip("/") + ".key"
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    made = False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        made = True
    with open(path) as f:
        key = f.read().strip()
    if len(key) < 16:
        raise ProfileUnavailable(f"the generated profile key at {path} is damaged; restore it")
    return key, path, made


# ------------------------------------------------------------------ the room


@dataclass
class Loaded:
    """What a start takes from the room: the state its context opens with, and the profile
    it uses (None for an inline ``storage_state``)."""

    storage_state: dict[str, Any]
    use: SessionProfile | None = None
    meta: dict[str, Any] | None = None


@dataclass
class _Hold:
    principal: str
    profile_id: str
    meta: dict[str, Any]  # as loaded: a save updates it without reading it again
    lost_to: str | None = None  # another session took the lease (it had lapsed)


class ProfileRoom:
    """Profiles for one host: CRUD from request threads, load and write-back on the loop.

    The store opens at first use (a file store then makes its key if it needs one).
    """

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.uri = default_store_uri(settings)
        self._opened: tuple[ProfileStore, KeyRing] | None = None
        self._open_lock = threading.Lock()
        self._held: dict[str, _Hold] = {}  # session id -> the profile it persists into (loop)
        self._renewer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ opening

    def opened(self) -> tuple[ProfileStore, KeyRing]:
        """The store and the keys (opened now if they were not)."""
        if self._opened is None:
            with self._open_lock:
                if self._opened is None:
                    self._opened = self._open()
        return self._opened

    def _open(self) -> tuple[ProfileStore, KeyRing]:
        store = open_store(self.uri)
        keys = list(self.settings.profile_key)
        if isinstance(store, FileProfileStore):
            beside = store.root.rstrip("/") + ".key"
            if not keys:
                key, path, made = generated_key(store.root)
                keys = [key]
                log.info(
                    "flask_sessions: no SESSIONS_PROFILE_KEY: profiles in %s are encrypted "
                    "with the key %s %s (0600); set SESSIONS_PROFILE_KEY to use your own",
                    store.root,
                    "generated at" if made else "kept at",
                    path,
                    extra={"event": "profile_key", "path": path},
                )
            elif os.path.exists(beside):  # profiles saved before a key was set still open
                keys.append(generated_key(store.root)[0])
        elif not keys:  # config refuses this for an explicit Redis store; a host checks too
            raise ProfileUnavailable(
                "profiles on Redis need SESSIONS_PROFILE_KEY; set it on every host"
            )
        return store, KeyRing(keys)

    def _nothing_stored(self) -> bool:
        """A file store that was never written to: reads answer without creating it (or
        its key), so a server whose clients never use profiles leaves nothing on disk."""
        if self._opened is not None or not self.uri.startswith("file://"):
            return False
        return not os.path.isdir(self.uri.removeprefix("file://"))

    def _store_call(self, fn: Callable[[ProfileStore], T]) -> T:
        store, _ = self.opened()
        try:
            return fn(store)
        except StoreDown as exc:
            raise ProfileUnavailable(f"the profile store is unavailable: {exc}") from None

    # ------------------------------------------------------------ sealed records

    def _meta(self, principal: str, profile_id: str) -> dict[str, Any] | None:
        if self._nothing_stored():
            return None
        stored = self._store_call(lambda s: s.get(owner_of(principal), profile_id, False))
        if stored is None:
            return None
        _, ring = self.opened()
        plain = ring.open(stored.meta, _aad("meta", principal, profile_id), _what(profile_id))
        meta: dict[str, Any] = json.loads(plain)
        return meta

    def _read_state(self, principal: str, profile_id: str) -> dict[str, Any]:
        stored = self._store_call(lambda s: s.get(owner_of(principal), profile_id, True))
        if stored is None or stored.state is None:
            raise _not_found(profile_id)
        _, ring = self.opened()
        what = _what(profile_id)
        ring.open(stored.meta, _aad("meta", principal, profile_id), what)
        state: dict[str, Any] = json.loads(
            ring.open(stored.state, _aad("state", principal, profile_id), what)
        )
        return state

    def _write(
        self, principal: str, profile_id: str, meta: dict[str, Any], state: bytes
    ) -> ProfileInfo:
        _, ring = self.opened()
        sealed_meta = ring.seal(json.dumps(meta).encode(), _aad("meta", principal, profile_id))
        sealed_state = ring.seal(state, _aad("state", principal, profile_id))
        owner = owner_of(principal)
        self._store_call(lambda s: s.put(owner, profile_id, sealed_meta, sealed_state))
        return _info(profile_id, meta, None)

    def _holder(self, principal: str, profile_id: str) -> str | None:
        return self._store_call(lambda s: s.holder(owner_of(principal), profile_id))

    def _known(self, principal: str, profile_id: str) -> dict[str, Any]:
        meta = self._meta(principal, profile_id) if _ID.match(profile_id) else None
        if meta is None:
            raise _not_found(profile_id)
        return meta

    # ------------------------------------------------------------ CRUD (request threads)

    def create(self, principal: str, name: str) -> ProfileInfo:
        cap = self.settings.max_profiles_per_principal
        count = len(self._store_call(lambda s: s.ids(owner_of(principal))))
        if count >= cap:
            raise ProfileConflict(
                f"you have {count} profiles, the most one caller may keep "
                "(SESSIONS_MAX_PROFILES_PER_PRINCIPAL); delete one (DELETE /profiles/<id>)",
                profiles_max=cap,
            )
        now = iso_datetime(self.clock())
        meta = {
            "name": name,
            "created_at": now,
            "updated_at": now,
            "size_bytes": 0,
            "domains": [],
            "created_ns": time.time_ns(),  # orders profiles made within one clock tick
        }
        return self._write(principal, secrets.token_urlsafe(16), meta, state_bytes(EMPTY_STATE))

    def list(self, principal: str) -> list[ProfileInfo]:
        if self._nothing_stored():
            return []
        found = []
        for profile_id in self._store_call(lambda s: s.ids(owner_of(principal))):
            meta = self._meta(principal, profile_id)
            if meta is not None:
                info = _info(profile_id, meta, self._holder(principal, profile_id))
                found.append((info.created_at, meta.get("created_ns", 0), profile_id, info))
        return [info for *_, info in sorted(found, key=lambda f: f[:3])]

    def info(self, principal: str, profile_id: str) -> ProfileInfo:
        meta = self._known(principal, profile_id)
        return _info(profile_id, meta, self._holder(principal, profile_id))

    def delete(self, principal: str, profile_id: str) -> ProfileInfo:
        info = self.info(principal, profile_id)
        if info.in_use_by is not None:
            raise _in_use(profile_id, info.in_use_by, "deleted")
        self._store_call(lambda s: s.delete(owner_of(principal), profile_id))
        return info

    def export(self, principal: str, profile_id: str) -> dict[str, Any]:
        self._known(principal, profile_id)
        return self._read_state(principal, profile_id)

    def replace(self, principal: str, profile_id: str, state: StorageState) -> ProfileInfo:
        """``PUT /profiles/<id>/state``: the profile's state becomes ``state``."""
        meta = self._known(principal, profile_id)
        holder = self._holder(principal, profile_id)
        if holder is not None:
            raise _in_use(profile_id, holder, "replaced")
        raw = state.to_playwright()
        data = state_bytes(raw)
        self._check_profile_size(len(data), "the state")
        meta = self._updated(meta, raw, len(data))
        return self._write(principal, profile_id, meta, data)

    def _check_profile_size(self, size: int, what: str) -> None:
        limit = self.settings.max_profile_mb
        if size > limit * MB:
            raise TooLarge(
                f"{what} is {size / MB:.1f} MB, over SESSIONS_MAX_PROFILE_MB={limit:g}; nothing "
                "was saved and the profile keeps its last good state",
                limit="SESSIONS_MAX_PROFILE_MB",
            )

    def _updated(self, meta: dict[str, Any], state: dict[str, Any], size: int) -> dict[str, Any]:
        return {
            **meta,
            "updated_at": iso_datetime(self.clock()),
            "size_bytes": size,
            "domains": state_domains(state),
        }

    # ------------------------------------------------------------ sessions (the loop)

    async def prepare(
        self, principal: str, session_id: str, request: StartRequest
    ) -> Loaded | None:
        """What a start loads: its inline ``storage_state`` or its ``profile`` (taking the
        persist lease for ``session_id``); None when it asks for neither."""
        if request.storage_state is not None:
            raw = request.storage_state.to_playwright()
            size, limit = len(state_bytes(raw)), self.settings.max_state_mb
            if size > limit * MB:
                raise TooLarge(
                    f"storage_state is {size / MB:.1f} MB, over SESSIONS_MAX_STATE_MB={limit:g}; "
                    "send a smaller state (or save it in a profile: PUT /profiles/<id>/state)",
                    limit="SESSIONS_MAX_STATE_MB",
                )
            return Loaded(raw)
        ref = request.profile
        if ref is None:
            return None
        loaded = await asyncio.to_thread(self._load, principal, session_id, ref.id, ref.persist)
        if ref.persist:
            self._held[session_id] = _Hold(principal, ref.id, loaded.meta or {})
            if self._renewer is None or self._renewer.done():
                self._renewer = asyncio.get_running_loop().create_task(self._renew())
        return loaded

    def _load(self, principal: str, session_id: str, profile_id: str, persist: bool) -> Loaded:
        meta = self._known(principal, profile_id)
        owner = owner_of(principal)
        if persist:
            holder = self._store_call(
                lambda s: s.lock(owner, profile_id, session_id, LEASE_SECONDS)
            )
            if holder is not None:
                raise _in_use(profile_id, holder, "persisted by a second session")
        try:
            state = self._read_state(principal, profile_id)
        except BaseException:
            if persist:
                self._release(principal, profile_id, session_id)
            raise
        return Loaded(state, SessionProfile(profile_id=profile_id, persist=persist), meta)

    async def abandon(self, session_id: str) -> None:
        """The start failed after :meth:`prepare`: give the lease back."""
        hold = self._held.pop(session_id, None)
        if hold is not None:
            await asyncio.to_thread(self._release, hold.principal, hold.profile_id, session_id)

    def _release(self, principal: str, profile_id: str, session_id: str) -> None:
        try:
            self._store_call(lambda s: s.unlock(owner_of(principal), profile_id, session_id))
        except ProfileUnavailable as exc:  # the lease lapses by itself
            log.warning("flask_sessions: releasing profile %s failed: %s", profile_id, exc.message)

    async def save_now(self, record: SessionRecord, live: LiveSession) -> ProfileInfo:
        """``POST /session/<id>/profile/save``: write the session's state back now."""
        use = record.profile
        if use is None or not use.persist:
            raise ProfileConflict(
                "this session holds no profile with persist: true, so it has nothing to save "
                'into; start one with "profile": {"id": …, "persist": true}'
            )
        info = await self._write_back(record, live, raise_errors=True)
        assert info is not None
        return info

    async def session_ended(self, record: SessionRecord, live: LiveSession | None) -> None:
        """A persisting session ended: write its state back (a normal end) before its
        context closes, then give the lease back. An ``error`` end keeps the last saved
        state, and the record says so."""
        use = record.profile
        hold = self._held.get(record.session_id)
        if use is None or not use.persist or hold is None:
            return
        try:
            if live is not None and record.status.value != "error":
                await self._write_back(record, live, raise_errors=False)
            else:
                use.not_saved = (
                    f"the session ended in {record.status.value}; the profile keeps "
                    f"{_last_good(use)}"
                )
        finally:
            self._held.pop(record.session_id, None)
            await asyncio.to_thread(
                self._release, hold.principal, hold.profile_id, record.session_id
            )

    def browser_lost(self, record: SessionRecord) -> None:
        """Chromium died under a persisting session (on the loop): nothing can be read; say
        so and give the lease back."""
        use = record.profile
        hold = self._held.pop(record.session_id, None)
        if use is None or hold is None:
            return
        use.not_saved = f"the browser exited; the profile keeps {_last_good(use)}"
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self._release, hold.principal, hold.profile_id, record.session_id)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_back(
        self, record: SessionRecord, live: LiveSession, raise_errors: bool
    ) -> ProfileInfo | None:
        use = record.profile
        hold = self._held.get(record.session_id)
        assert use is not None
        if hold is None or hold.lost_to is not None:
            holder = hold.lost_to if hold is not None else "another session"
            return self._not_saved(
                use,
                ProfileConflict(
                    f"not saved: this session's hold on profile {use.profile_id} lapsed and "
                    f"session {holder} took it; the profile keeps what that session saves",
                    holder=holder,
                ),
                raise_errors,
            )
        timeout = max(5.0, 2 * self.settings.action_timeout_ms / 1000)
        try:
            raw = await asyncio.wait_for(live.context.storage_state(indexed_db=True), timeout)
        except (PlaywrightError, TimeoutError) as exc:
            reason = "did not answer in time" if isinstance(exc, TimeoutError) else "failed"
            return self._not_saved(
                use,
                ProfileUnavailable(
                    f"not saved: reading the session's state {reason}; the profile keeps "
                    f"{_last_good(use)}"
                ),
                raise_errors,
            )
        state = kept_state(dict(raw))
        data = state_bytes(state)
        try:
            self._check_profile_size(len(data), "the session's state")
            info = await asyncio.to_thread(self._save, hold, record.session_id, state, data)
        except (TooLarge, ProfileUnavailable, ProfileNotFound, ProfileConflict) as exc:
            return self._not_saved(use, exc, raise_errors)
        use.saved_at, use.not_saved = info.updated_at, None
        return info

    def _save(
        self, hold: _Hold, session_id: str, state: dict[str, Any], data: bytes
    ) -> ProfileInfo:
        principal, profile_id = hold.principal, hold.profile_id
        owner = owner_of(principal)
        holder = self._store_call(lambda s: s.holder(owner, profile_id))
        if holder is None:  # the lease lapsed and nobody took it: take it again, if the
            # profile is still there (a lapsed lease lets a delete through)
            if self._meta(principal, profile_id) is None:
                raise ProfileNotFound(
                    f"not saved: profile {profile_id} was deleted while this session used it",
                    profile_id=profile_id,
                )
            holder = self._store_call(
                lambda s: s.lock(owner, profile_id, session_id, LEASE_SECONDS)
            )
        if holder not in (None, session_id):
            hold.lost_to = holder
            raise _in_use(profile_id, holder, "saved by this session")
        meta = self._updated(hold.meta, state, len(data))
        info = self._write(principal, profile_id, meta, data)
        hold.meta = meta
        info.in_use_by = session_id
        return info

    def _not_saved(
        self, use: SessionProfile, exc: Exception, raise_errors: bool
    ) -> ProfileInfo | None:
        message = getattr(exc, "message", str(exc))
        use.not_saved = message
        log.warning("flask_sessions: profile %s %s", use.profile_id, message)
        if raise_errors:
            raise exc
        return None

    async def _renew(self) -> None:
        """Renew every held lease a third of its life before it would lapse."""
        while self._held:
            await asyncio.sleep(LEASE_SECONDS / 3)
            for session_id, hold in list(self._held.items()):
                try:
                    holder = await asyncio.to_thread(
                        self._store_call,
                        lambda s, h=hold, sid=session_id: s.lock(
                            owner_of(h.principal), h.profile_id, sid, LEASE_SECONDS
                        ),
                    )
                except ProfileUnavailable:
                    continue  # the store is away: try again next time
                if holder is not None:
                    hold.lost_to = holder

    async def close(self) -> None:
        """At shutdown (after every session ended): stop renewing, close the store."""
        if self._renewer is not None:
            self._renewer.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._opened is not None:
            await asyncio.to_thread(self._opened[0].close)


def _what(profile_id: str) -> str:
    return f"profile {profile_id}"


def _last_good(use: SessionProfile) -> str:
    when = f"the state saved at {use.saved_at}" if use.saved_at else "its state from before"
    return f"{when} (the last good one)"


def _info(profile_id: str, meta: dict[str, Any], holder: str | None) -> ProfileInfo:
    return ProfileInfo(
        profile_id=profile_id,
        name=meta["name"],
        created_at=meta["created_at"],
        updated_at=meta["updated_at"],
        size_bytes=meta["size_bytes"],
        domains=meta["domains"],
        in_use_by=holder,
    )


def _not_found(profile_id: str) -> ProfileNotFound:
    return ProfileNotFound(
        f"no profile {profile_id[:80]!r} for you; it never existed, belongs to someone else, "
        "or was deleted. Create one with POST /profiles",
        profile_id=profile_id[:80],
    )


def _in_use(profile_id: str, holder: str, doing: str) -> ProfileConflict:
    return ProfileConflict(
        f"profile {profile_id} is held by session {holder} (persist: true), so it cannot be "
        f"{doing}; close that session first, or start with persist: false to use the profile "
        "read-only",
        holder=holder,
        profile_id=profile_id,
    )

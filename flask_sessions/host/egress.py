"""The network egress policy: which addresses a page may reach, and the proxy that enforces it.

:class:`EgressPolicy` is pure: CIDR lists in, ``check(ip) -> Rule | None`` out.

- An address in ``SESSIONS_ALLOWED_NETWORKS`` is always allowed: allowed wins over every
  block, whatever the prefix lengths (it is the operator's exception list, e.g. one internal
  service, or the metadata address on purpose).
- Otherwise an address in a blocked network is refused: ``SESSIONS_BLOCKED_NETWORKS``, the
  ``SESSIONS_BLOCK_PRIVATE_NETWORKS`` shorthand (:data:`PRIVATE`), and link-local
  (:data:`LINK_LOCAL`: 169.254.0.0/16 with the cloud metadata address, fe80::/10), which is
  blocked always. When several match, the most specific one is named.
- IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are checked as the IPv4 address they are;
  NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``) addresses also by the IPv4 they embed.

:class:`EgressProxy` enforces it: a small HTTP forward proxy served on the runtime loop
(asyncio streams) on ``127.0.0.1:<ephemeral port>``. Chromium is launched with
``--proxy-server`` pointing at it and ``--proxy-bypass-list=<-loopback>`` (without it Chromium
sends loopback and link-local literals direct), so every connection any page, frame, worker
or popup of any context makes goes through it: plain ``http://`` as absolute-URI requests,
``https://``, ``ws://`` and ``wss://`` as ``CONNECT`` tunnels. For each one the proxy resolves
the host name once itself, checks every address it got, and connects to a checked address:
a name that resolves to a blocked address fails, and DNS rebinding cannot slip a second
answer between the check and the connect. ``--force-webrtc-ip-handling-policy=
disable_non_proxied_udp`` keeps WebRTC off UDP (it may only use TCP TURN, through the
proxy), ``--disable-quic`` keeps HTTP/3 off, and ``--host-resolver-rules`` stops Chromium
resolving any name itself (no DNS prefetch: names are the proxy's business). If the proxy
is not there Chromium fails the load (a fixed proxy has no DIRECT fallback): the policy
fails closed.

A refused request gets a 403 (``CONNECT`` too, which Chromium reports as
``net::ERR_TUNNEL_CONNECTION_FAILED``); a host that cannot be resolved or reached gets a 502
(504 on a connect timeout) named like Chromium's own error (``net::ERR_CONNECTION_REFUSED``
...). The proxy remembers its recent refusals and failures per ``host:port`` (bounded, a
minute), so ``page_ops`` can turn that bare tunnel error into the rule that refused the load.

Why a proxy, compared with the alternatives:

- Playwright ``context.route("**/*")`` sees URLs, not addresses: to check the address it
  would have to resolve the name itself, and Chromium resolves it again when it connects,
  so rebinding races the check. Routes miss what service workers fetch (Playwright's
  support is experimental) and WebRTC, need a second API for WebSockets
  (``route_web_socket``), cost a round trip through the driver for every request, and
  switch off Chromium's HTTP cache.
- ``--host-resolver-rules`` maps host names, not resolved addresses: it cannot express
  "any name that resolves into 10.0.0.0/8", and it does not apply to IP literals at all.
- The proxy costs one loopback hop per connection, the bytes copied once through Python,
  and (plain ``http://`` only) one upstream connection per request instead of keep-alive;
  HTTPS stays end to end encrypted inside the tunnel, with HTTP/2 multiplexing. The
  benchmark's egress section measures what that costs observe and start (the README has
  the numbers).

Bounds: request and response heads of at most 64 KiB, a head must arrive within 30 s, name
resolution 10 s, connect 10 s, a tunnel or request with no byte moving either way for 5
minutes is closed, and at most :attr:`EgressProxy.max_connections` client connections are
open at once (past it: 503). All I/O is non-blocking on the loop (``getaddrinfo`` runs in
the loop's executor); :meth:`EgressProxy.stop` closes every socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from flask_sessions.host.upstream import UpstreamRoute

log = logging.getLogger("flask_sessions")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolve(host, port) -> addresses``: replaces DNS (tests); raise ``OSError`` if unknown."""

BLOCKED_KEY = "SESSIONS_BLOCKED_NETWORKS"
ALLOWED_KEY = "SESSIONS_ALLOWED_NETWORKS"
PRIVATE_KEY = "SESSIONS_BLOCK_PRIVATE_NETWORKS"
HOSTS_KEY = "SESSIONS_EGRESS_HOSTS"
LINK_LOCAL_SOURCE = "the always-blocked link-local range"

LINK_LOCAL: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local, cloud metadata 169.254.169.254
    ipaddress.ip_network("fe80::/10"),
)
PRIVATE: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),  # loopback
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("0.0.0.0/8"),  # "this host": connecting to 0.0.0.0 reaches loopback
    ipaddress.ip_network("::/128"),
    ipaddress.ip_network("10.0.0.0/8"),  # RFC 1918
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT (RFC 6598)
    *LINK_LOCAL,
    ipaddress.ip_network("fc00::/7"),  # IPv6 unique local
)
"""What ``SESSIONS_BLOCK_PRIVATE_NETWORKS`` blocks."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Flags the proxy relies on; an operator's SESSIONS_BROWSER_ARGS may not override them.
PROXY_FLAGS = (
    "--proxy-server",
    "--no-proxy-server",
    "--proxy-pac-url",
    "--proxy-auto-detect",
    "--proxy-bypass-list",
    "--force-webrtc-ip-handling-policy",
    "--host-resolver-rules",
)

# Chromium's restricted ports (net/base/port_util.cc, kRestrictedPorts). Without a proxy
# Chromium itself refuses to fetch from them; through a proxy it leaves that to the proxy,
# so the proxy refuses them too. The CDP debugging port sits on one of them (host/cdp.py):
# no page can reach it, whatever the policy.
RESTRICTED_PORTS = frozenset(
    {
        1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95,
        101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161,
        179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563,
        587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060,
        5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
    }
)  # fmt: skip

EGRESS_HEADER = "X-Flask-Sessions-Egress"
"""Header on every answer the proxy gives itself (403, 502, ...), never on forwarded ones."""
TUNNEL_FAILED = "ERR_TUNNEL_CONNECTION_FAILED"
"""What Chromium says when the proxy refused a ``CONNECT``."""


# ------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class Rule:
    """One blocked network and where it comes from (a setting, or link-local)."""

    network: Network
    source: str

    def __str__(self) -> str:
        return f"{self.source} ({self.network})"


def parse_networks(key: str, value: Any) -> tuple[Network, ...]:
    """CIDR networks from a list or a comma-separated string; errors name ``key`` and value.

    A bare address is a one-address network (``127.0.0.2`` is ``127.0.0.2/32``).
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        raise ValueError(
            f"{key} must be a list of CIDR networks or a comma-separated string, got {value!r}"
        )
    networks: list[Network] = []
    for item in items:
        if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            networks.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f"{key}: {item!r} is not a network in CIDR notation, e.g. 10.0.0.0/8")
        try:
            networks.append(ipaddress.ip_network(item.strip()))
        except ValueError as exc:
            raise ValueError(
                f"{key}: {item!r} is not a network in CIDR notation, e.g. 10.0.0.0/8 or "
                f"fd00::/8 ({exc})"
            ) from None
    return tuple(networks)


def parse_hosts(key: str, value: Any) -> dict[str, tuple[Address, ...]]:
    """A fixed ``{name: address or [addresses]}`` map, or ``"name=addr,name2=addr2"``."""
    if value is None or value == "":
        return {}
    pairs: list[tuple[Any, Any]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for part in (p.strip() for p in value.split(",") if p.strip()):
            name, sep, address = part.partition("=")
            if not sep:
                raise ValueError(f"{key}: {part!r} is not name=address")
            pairs.append((name.strip(), address.strip()))
    else:
        raise ValueError(f"{key} must be a {{name: address}} map or 'name=address,...'")
    hosts: dict[str, tuple[Address, ...]] = {}
    for name, addresses in pairs:
        listed = [addresses] if isinstance(addresses, str) else addresses
        if not isinstance(name, str) or not name.strip() or not isinstance(listed, (list, tuple)):
            raise ValueError(f"{key}: {name!r}: {addresses!r} is not name: address(es)")
        try:
            parsed = tuple(as_address(str(a)) for a in listed)
        except ValueError:
            raise ValueError(f"{key}: {name!r}: {addresses!r} is not an IP address") from None
        if not parsed:
            raise ValueError(f"{key}: {name!r} has no address")
        hosts[name.strip().lower().rstrip(".")] = parsed
    return hosts


def as_address(value: str | Address) -> Address:
    """An address from text (brackets and an IPv6 zone are dropped); IPv4-mapped IPv6
    addresses become the IPv4 address they are. Raises ``ValueError``."""
    if isinstance(value, str):
        value = ipaddress.ip_address(value.strip().strip("[]").split("%", 1)[0])
    if isinstance(value, ipaddress.IPv6Address) and value.ipv4_mapped is not None:
        return value.ipv4_mapped
    return value


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a NAT64 or 6to4 address carries (translators route to it)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        return address.sixtofour
    return None


def _covers(outer: Network, inner: Network) -> bool:
    if isinstance(outer, ipaddress.IPv4Network) and isinstance(inner, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(outer, ipaddress.IPv6Network) and isinstance(inner, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


class EgressPolicy:
    """Which destination addresses pages may connect to.

    Example::

        policy = EgressPolicy(blocked=parse_networks(BLOCKED_KEY, "10.0.0.0/8"))
        policy.check("10.1.2.3")         # Rule(10.0.0.0/8, 'SESSIONS_BLOCKED_NETWORKS')
        policy.check("169.254.169.254")  # the link-local rule: always blocked by default
        policy.check("93.184.216.34")    # None: allowed
    """

    def __init__(
        self,
        blocked: Iterable[Network] = (),
        allowed: Iterable[Network] = (),
        block_private: bool = False,
    ) -> None:
        self.allowed = tuple(allowed)
        self.block_private = block_private
        rules = [Rule(n, BLOCKED_KEY) for n in blocked]
        if block_private:
            rules += [Rule(n, PRIVATE_KEY) for n in PRIVATE if n not in LINK_LOCAL]
        rules += [Rule(n, LINK_LOCAL_SOURCE) for n in LINK_LOCAL]
        self.rules = tuple(rules)

    def _match(self, address: Address) -> Rule | None:
        if any(address in network for network in self.allowed):
            return None
        best: Rule | None = None
        for rule in self.rules:
            if address in rule.network and (
                best is None or rule.network.prefixlen > best.network.prefixlen
            ):
                best = rule
        return best

    def check(self, ip: str | Address) -> Rule | None:
        """The rule that blocks ``ip``, or None if pages may connect to it."""
        address = as_address(ip)
        if any(address in network for network in self.allowed):
            return None
        rule = self._match(address)
        if rule is None and (embedded := _embedded_ipv4(address)) is not None:
            rule = self._match(embedded)
        return rule

    def explain(self, ip: str | Address, name: str | None = None) -> str | None:
        """Why ``ip`` (that ``name`` resolved to, if given) is blocked; None if it is not."""
        address = as_address(ip)
        rule = self.check(address)
        if rule is None:
            return None
        embedded = _embedded_ipv4(address)
        what = str(address)
        if embedded is not None and address not in rule.network:
            what += f" (which carries {embedded})"
        if name is not None and name != str(address):
            return f"{name} resolves to {what}, which is in {rule}"
        return f"{what} is in {rule}"

    @property
    def blocks_nothing(self) -> bool:
        """True when the allowed networks cover every blocked one (the proxy is not needed)."""
        return all(any(_covers(a, rule.network) for a in self.allowed) for rule in self.rules)

    def describe(self) -> str:
        """One line for the log: what is blocked, from where, and what is allowed."""
        by_source: dict[str, list[str]] = {}
        for rule in self.rules:
            by_source.setdefault(rule.source, []).append(str(rule.network))
        blocked = "; ".join(f"{source}: {', '.join(nets)}" for source, nets in by_source.items())
        allowed = ", ".join(str(n) for n in self.allowed) or "none"
        private = "on" if self.block_private else "off (turn it on for a shared server)"
        return (
            f"blocked: {blocked}; allowed over any block ({ALLOWED_KEY}): {allowed}; "
            f"{PRIVATE_KEY}: {private}"
        )


def check_browser_args(args: Iterable[str]) -> None:
    """Refuse SESSIONS_BROWSER_ARGS that would take Chromium around the egress proxy."""
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in PROXY_FLAGS:
            raise ValueError(
                f"SESSIONS_BROWSER_ARGS: {arg!r} would take Chromium around the egress policy; "
                "flask_sessions sets the proxy and resolver flags itself"
            )


# -------------------------------------------------------------------- the proxy

HEAD_LIMIT = 64 * 1024
BUFFER = 64 * 1024
_HOST_RE = re.compile(r"[A-Za-z0-9._~:%-]+")
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    }
)


class _Refused(Exception):
    """The proxy answers this request itself: ``status``, and a message naming why."""

    def __init__(self, status: int, reason: str, message: str, remember: bool = True) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.remember = status, reason, message, remember


@dataclass
class _Request:
    method: str
    host: str
    port: int
    head: bytes  # what goes upstream (b"" for CONNECT)


def _split_authority(authority: str, default_port: int | None) -> tuple[str, int]:
    """``host[:port]`` or ``[v6][:port]`` as ``(host without brackets, port)``."""
    if authority.startswith("["):
        end = authority.find("]")
        rest = authority[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise _Refused(400, "Bad Request", f"bad authority {authority!r}", remember=False)
        host, port_text = authority[1:end], rest[1:]
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, ""
    if not port_text and default_port is not None:
        port = default_port
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise _Refused(400, "Bad Request", f"bad port in {authority!r}", remember=False)
    if not host or not _HOST_RE.fullmatch(host):
        raise _Refused(400, "Bad Request", f"bad host in {authority!r}", remember=False)
    return host.lower().rstrip("."), port


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[:1] in " \t":
            raise _Refused(400, "Bad Request", "malformed header line", remember=False)
        out.append((name, value.strip()))
    return out


def _without_hop_by_hop(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP and n.lower() not in named]


def _render(first: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [first, *(f"{n}: {v}" for n, v in headers), "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def parse_request(head: bytes) -> _Request:
    """A client's request head: ``CONNECT host:port`` or an absolute ``http://`` request,
    rewritten for the origin (origin-form target, hop-by-hop headers dropped, one request
    per connection)."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")[:-2]
    parts = lines[0].split(" ") if lines else []
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refused(400, "Bad Request", "not an HTTP/1.x request line", remember=False)
    method, target, version = parts
    headers = _headers(lines[1:])
    if method == "CONNECT":
        host, port = _split_authority(target, None)
        return _Request(method, host, port, b"")
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() != "http":
        raise _Refused(
            400, "Bad Request", "this is a forward proxy: send an absolute http:// URL or CONNECT"
        )
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if "@" in authority:
        raise _Refused(400, "Bad Request", "credentials in the URL are not forwarded")
    host, port = _split_authority(authority, 80)
    path = "/" + path if not path.startswith("/") else path
    upstream = _render(f"{method} {path} {version}", _without_hop_by_hop(headers))
    return _Request(method, host, port, upstream)


def _rewrite_response_head(head: bytes) -> bytes:
    lines = head.decode("latin-1").split("\r\n")[:-2]
    if not lines or not lines[0].startswith("HTTP/"):
        raise ValueError("not an HTTP response")
    return _render(lines[0], _without_hop_by_hop(_headers(lines[1:])))


def _failure_name(exc: BaseException) -> tuple[str, str]:
    """Chromium's name for a connect failure, and a few words."""
    if isinstance(exc, ConnectionRefusedError):
        return "net::ERR_CONNECTION_REFUSED", "connection refused"
    if isinstance(exc, TimeoutError):
        return "net::ERR_CONNECTION_TIMED_OUT", "timed out"
    if isinstance(exc, OSError) and exc.errno in {101, 113}:  # ENETUNREACH, EHOSTUNREACH
        return "net::ERR_ADDRESS_UNREACHABLE", exc.strerror or "unreachable"
    return "net::ERR_CONNECTION_FAILED", str(exc) or type(exc).__name__


def _max_connections() -> int:
    """Client connections at once: each holds two descriptors, leave room for the rest."""
    try:
        import resource  # not on Windows
    except ImportError:
        return 1024
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 1024
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(64, min(4096, (soft - 512) // 2))


class _Tunnel:
    """Two connected streams, closed together when idle too long or when stopped."""

    def __init__(self, loop: asyncio.AbstractEventLoop, idle_timeout: float) -> None:
        self.loop = loop
        self.idle_timeout = idle_timeout
        self.last = loop.time()
        self.writers: list[asyncio.StreamWriter] = []
        self._timer: asyncio.TimerHandle | None = None

    def watch(self) -> None:
        self._timer = self.loop.call_at(self.last + self.idle_timeout, self._check)

    def _check(self) -> None:
        if self.loop.time() - self.last >= self.idle_timeout:
            self.close()
        else:
            self.watch()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for writer in self.writers:
            with contextlib.suppress(Exception):
                writer.close()


class EgressProxy:
    """A filtering HTTP forward proxy for Chromium, run on the runtime loop.

    Example (on the loop)::

        proxy = EgressProxy(EgressPolicy(blocked=[ip_network("10.0.0.0/8")]))
        await proxy.start()
        args = proxy.browser_args()   # for chromium.launch(args=...)
        ...
        await proxy.stop()

    ``hosts`` maps names to fixed addresses before any DNS (``SESSIONS_EGRESS_HOSTS``; the
    policy checks them like any other address); ``resolver`` replaces DNS altogether.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        hosts: Mapping[str, Sequence[Address]] | None = None,
        *,
        resolver: Resolver | None = None,
        head_timeout: float = 30.0,
        dns_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        max_connections: int | None = None,
        remember_seconds: float = 60.0,
        remember_max: int = 256,
    ) -> None:
        self.policy = policy
        self.hosts: dict[str, tuple[Address, ...]] = {k: tuple(v) for k, v in (hosts or {}).items()}
        self.resolver = resolver
        self.head_timeout = head_timeout
        self.dns_timeout = dns_timeout
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections or _max_connections()
        self._remember_seconds = remember_seconds
        self._remember_max = remember_max
        self._recent: OrderedDict[tuple[str, int], tuple[float, str]] = OrderedDict()
        self._server: asyncio.Server | None = None
        self._tunnels: dict[asyncio.Task[Any], _Tunnel] = {}
        # per-session upstream proxies (issue 18a, upstream.py): listener port -> its route
        self.routes: dict[int, UpstreamRoute] = {}
        self.port = 0
        self.blocked = 0  # requests refused by the policy since start
        self.forwarded = 0  # requests and tunnels connected

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen on 127.0.0.1:<ephemeral port> (idempotent)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", 0, limit=HEAD_LIMIT, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "flask_sessions: egress proxy on 127.0.0.1:%d enforces the policy on every "
            "request Chromium makes",
            self.port,
        )

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for route in list(self.routes.values()):
            route.stop_listening()
        tasks = list(self._tunnels)
        for task, tunnel in list(self._tunnels.items()):
            tunnel.close()
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        return len(self._tunnels)

    def browser_args(self) -> list[str]:
        """The Chromium flags that send every connection through this proxy."""
        if not self.port:
            raise RuntimeError("start the egress proxy before asking for its flags")
        return [
            f"--proxy-server=http://127.0.0.1:{self.port}",
            "--proxy-bypass-list=<-loopback>",  # loopback and link-local go through it too
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
            "--disable-quic",
            # Chromium resolves no name itself (the proxy does): no DNS prefetch, no leaks.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        ]

    # ------------------------------------------------------- what was refused

    def explain(self, url: str) -> str | None:
        """Why the proxy recently refused (or could not reach) ``url``'s host and port."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return None
        if host is None or port is None:
            return None
        found = self._recent.get((host.rstrip("."), port))
        if found is None:
            return None
        when, message = found
        if time.monotonic() - when > self._remember_seconds:
            return None
        return message

    def _remember(self, host: str, port: int, message: str) -> None:
        key = (host, port)
        self._recent.pop(key, None)
        self._recent[key] = (time.monotonic(), message)
        while len(self._recent) > self._remember_max:
            self._recent.popitem(last=False)

    # ---------------------------------------------------------- connections

    async def _accept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        route: UpstreamRoute | None = None,
    ) -> None:
        """A client connection: on the main port, or on a session's ``route`` listener."""
        task = asyncio.current_task()
        assert task is not None
        tunnel = _Tunnel(asyncio.get_running_loop(), self.idle_timeout)
        tunnel.writers.append(writer)
        if len(self._tunnels) >= self.max_connections:
            await self._answer(
                writer, 503, "Service Unavailable", "the egress proxy is at its connection limit"
            )
            tunnel.close()
            return
        self._tunnels[task] = tunnel
        if route is not None:
            route.tasks.add(task)
        try:
            await self._serve(reader, writer, tunnel, route)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:  # one bad connection must not take anything else down
            log.exception("flask_sessions: egress proxy connection failed")
        finally:
            tunnel.close()
            self._tunnels.pop(task, None)
            if route is not None:
                route.tasks.discard(task)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tunnel: _Tunnel,
        route: UpstreamRoute | None = None,
    ) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
        except asyncio.LimitOverrunError:
            await self._answer(writer, 431, "Request Header Fields Too Large", "head over 64 KiB")
            return
        except (asyncio.IncompleteReadError, TimeoutError):
            return  # an idle or closed connection: nothing to say
        request: _Request | None = None
        via: UpstreamRoute | None = None  # the session's upstream proxy, if it goes through one
        try:
            request = parse_request(head)
            if route is not None and not route.upstream.bypasses(request.host, request.port):
                via = route
                upstream_reader, upstream_writer = await route.connect(request, tunnel)
            else:
                addresses = await self._resolve(request.host, request.port)
                upstream_reader, upstream_writer = await self._connect(
                    request.host, request.port, addresses, tunnel
                )
        except _Refused as refused:
            if request is not None and refused.remember:
                self._remember(request.host, request.port, refused.message)
            await self._answer(writer, refused.status, refused.reason, refused.message)
            return
        self.forwarded += 1
        self._recent.pop((request.host, request.port), None)  # reachable now: forget failures
        rewrite: Callable[[bytes], bytes] | None = None
        if request.method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        elif via is not None:
            upstream_writer.write(via.request_head(request))
            rewrite = via.response_head(request)
        else:
            upstream_writer.write(request.head)
            rewrite = _rewrite_response_head
        await self._relay(reader, writer, upstream_reader, upstream_writer, tunnel, rewrite)

    async def _answer(
        self, writer: asyncio.StreamWriter, status: int, reason: str, message: str
    ) -> None:
        kind = "blocked" if status == 403 else "failed"
        body = (message + "\n").encode("utf-8")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
            f"{EGRESS_HEADER}: {kind}\r\nConnection: close\r\nProxy-Connection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.drain(), self.head_timeout)

    async def _resolve(self, host: str, port: int) -> list[Address]:
        """Every address ``host`` stands for, each checked; refused if any is blocked."""
        try:
            addresses = [as_address(host)]
        except ValueError:
            addresses = await self._lookup(host, port)
        self.check(host, port, addresses)
        return addresses

    def check(self, host: str, port: int, addresses: Sequence[Address]) -> None:
        """Refuse (403) ``host:port`` if one of ``addresses`` is blocked, or is one of this
        proxy's own ports, or the port is restricted (checked with no address too)."""
        own_ports = {self.port, *self.routes}
        for address in (*addresses, None):
            reason = None
            if address is not None:
                reason = self.policy.explain(address, None if str(address) == host else host)
                own = port in own_ports and (address.is_loopback or address.is_unspecified)
                if reason is None and own:
                    reason = f"{host}:{port} is the egress proxy itself"
            if reason is None and port in RESTRICTED_PORTS:
                reason = f"port {port} is one Chromium never fetches from (a restricted port)"
            if reason is not None:
                self.blocked += 1
                log.debug("flask_sessions: egress blocked %s:%d: %s", host, port, reason)
                raise _Refused(403, "Forbidden", f"blocked by the egress policy: {reason}")

    async def _lookup(self, host: str, port: int) -> list[Address]:
        fixed = self.hosts.get(host)
        if fixed is not None:
            return list(fixed)
        try:
            if self.resolver is not None:
                texts = list(await asyncio.wait_for(self.resolver(host, port), self.dns_timeout))
            else:
                infos = await asyncio.wait_for(
                    asyncio.get_running_loop().getaddrinfo(
                        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                    ),
                    self.dns_timeout,
                )
                texts = [str(info[4][0]) for info in infos]
            addresses = list(dict.fromkeys(as_address(t) for t in texts))
        except (OSError, TimeoutError, ValueError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else "no such host"
            raise _Refused(
                502,
                "Bad Gateway",
                f"net::ERR_NAME_NOT_RESOLVED (the egress proxy could not resolve {host}: {what})",
            ) from None
        if not addresses:
            raise _Refused(
                502, "Bad Gateway", f"net::ERR_NAME_NOT_RESOLVED ({host} has no address)"
            )
        return addresses

    async def _connect(
        self, host: str, port: int, addresses: list[Address], tunnel: _Tunnel
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the first of the checked ``addresses`` that answers, in order."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        error: BaseException = TimeoutError()
        for address in addresses:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(str(address), port, limit=HEAD_LIMIT), remaining
                )
            except (OSError, TimeoutError) as exc:
                error = exc
                continue
            tunnel.writers.append(writer)
            return reader, writer
        name, words = _failure_name(error)
        status, reason = (504, "Gateway Timeout") if "TIMED_OUT" in name else (502, "Bad Gateway")
        raise _Refused(
            status, reason, f"{name} (the egress proxy could not connect to {host}:{port}: {words})"
        )

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
        tunnel: _Tunnel,
        rewrite_response: Callable[[bytes], bytes] | None,
    ) -> None:
        """Copy bytes both ways until either side closes or nothing moves for too long;
        ``rewrite_response`` rewrites the response head(s) of a plain http:// request."""
        tunnel.last = asyncio.get_running_loop().time()
        tunnel.watch()
        pumps = [
            asyncio.ensure_future(self._pump(reader, upstream_writer, tunnel)),
            asyncio.ensure_future(
                self._pump(upstream_reader, writer, tunnel, rewrite_head=rewrite_response)
            ),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        tunnel: _Tunnel,
        rewrite_head: Callable[[bytes], bytes] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            while rewrite_head is not None:  # the response head(s): close-delimited, for Chromium
                head = await src.readuntil(b"\r\n\r\n")
                tunnel.last = loop.time()
                try:
                    dst.write(rewrite_head(head))
                except (ValueError, _Refused):
                    return
                if not (head[9:10] == b"1" and head[9:12] != b"101"):  # 1xx: another follows
                    rewrite_head = None
                await dst.drain()
            while data := await src.read(BUFFER):
                tunnel.last = loop.time()
                dst.write(data)
                await dst.drain()


def proxy_for(
    policy: EgressPolicy, hosts: Mapping[str, Sequence[Address]] | None = None
) -> EgressProxy | None:
    """The proxy that enforces ``policy`` (None when it blocks nothing); logs the policy."""
    if policy.blocks_nothing:
        log.info("flask_sessions: egress policy blocks nothing; Chromium connects directly")
        return None
    log.info("flask_sessions: egress policy in force: %s", policy.describe())
    return EgressProxy(policy, hosts)

"""Per-session browser options: what a new session's context looks like (issue 18, item 1).

Every field is optional and validated here, on the front, before anything reaches a host;
:mod:`flask_sessions.host.options` turns them into Playwright's ``new_context(**kwargs)``
and the per-context setup (a route for ``block_resources``, a chained upstream ``proxy``).
The fields sit on every body that can create a session (start, and observe/step/scrape
without ``session_id``); a request that names an existing session and sends one is a 400:
options apply when a context is made, never to a running one.

Each error is a 400 naming the field and the rule. Two checks need the host: ``device`` is
looked up in the Playwright driver's own descriptors (a wrong name lists the close ones), and
``proxy.server``'s address must pass the host's egress policy.

Example::

    {"device": "iPhone 13", "locale": "de-DE", "timezone_id": "Europe/Berlin",
     "extra_http_headers": {"X-Run": "42"}, "block_resources": ["image", "font"],
     "proxy": {"server": "http://proxy.example:3128", "username": "u", "password": "p"}}
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import zoneinfo
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from flask_sessions.errors import InvalidInput

VIEWPORT_MIN, VIEWPORT_MAX = 200, 3840
USER_AGENT_MAX = 512
DEVICE_NAME_MAX = 64
LOCALE_MAX = 64
MAX_HEADERS = 32
HEADER_NAME_MAX = 128
HEADER_VALUE_MAX = 4096
HEADERS_TOTAL_MAX = 16 * 1024
MAX_PERMISSIONS = 20
PROXY_SERVER_MAX = 2048
PROXY_CREDENTIAL_MAX = 256
PROXY_BYPASS_MAX = 2048
PROXY_BYPASS_RULES_MAX = 64

Permission = Literal[
    "geolocation",
    "midi",
    "midi-sysex",
    "notifications",
    "camera",
    "microphone",
    "background-sync",
    "ambient-light-sensor",
    "accelerometer",
    "gyroscope",
    "magnetometer",
    "clipboard-read",
    "clipboard-write",
    "payment-handler",
    "storage-access",
    "local-fonts",
    "local-network-access",
    "screen-wake-lock",
]
"""The permission names Playwright grants in Chromium (``BrowserContext.grant_permissions``)."""

PERMISSIONS: tuple[str, ...] = Permission.__args__  # type: ignore[attr-defined]

ResourceType = Literal["image", "media", "font", "stylesheet"]
"""What ``block_resources`` may block (Playwright's ``request.resource_type`` names)."""

RESOURCE_TYPES: tuple[str, ...] = ResourceType.__args__  # type: ignore[attr-defined]

ColorScheme = Literal["light", "dark", "no-preference"]

# Headers a session may not set: hop-by-hop ones (RFC 9110 7.6.1), the ones that frame or
# route a request, and every Proxy-* (our egress proxy's and an upstream proxy's business).
REFUSED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PRINTABLE = re.compile(r"[\x20-\x7e\t]*")
_VISIBLE = re.compile(r"[\x20-\x7e]*")
# RFC 5646 language tags (grandfathered irregular tags left out): language, script, region,
# variants, extensions, private use. The language is 2 or 3 letters: RFC 5646 reserves 4 and
# registers none of 5 to 8 (Chromium's ICU refuses them, e.g. "german").
_BCP47 = re.compile(
    r"(?:[a-z]{2,3}(?:-[a-z]{3}){0,3})"
    r"(?:-[a-z]{4})?"
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"
    r"(?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*"
    r"(?:-x(?:-[a-z0-9]{1,8})+)?",
    re.IGNORECASE,
)
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?", re.I)
_BYPASS_HOST = re.compile(r"[a-z0-9_*.-]{1,253}", re.I)
# zoneinfo finds these files, but they are not IANA zone names Chromium's ICU knows
_NOT_ZONES = frozenset({"Factory", "localtime", "posixrules", "leapseconds", "tzdata.zi"})


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[float, BeforeValidator(_no_bool)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Viewport(_Strict):
    """The page's size in CSS pixels (each side 200 to 3840)."""

    width: Int = Field(ge=VIEWPORT_MIN, le=VIEWPORT_MAX)
    height: Int = Field(ge=VIEWPORT_MIN, le=VIEWPORT_MAX)


class Geolocation(_Strict):
    """Where ``navigator.geolocation`` says the page is; granting the permission with it."""

    latitude: Float = Field(ge=-90, le=90)
    longitude: Float = Field(ge=-180, le=180)
    accuracy: Float = Field(default=0, ge=0, le=100_000, description="in meters")


class ProxyOptions(_Strict):
    """An upstream HTTP proxy for this session alone, chained behind the egress proxy.

    ``server`` is ``http://host:port`` (or ``host:port``); ``username``/``password`` are
    sent to it as Basic auth by the host and never shown again; ``bypass`` lists the hosts
    reached directly instead (comma-separated: ``.example.com``, ``*.internal:8080``,
    ``10.0.0.0/8``, ``<local>``), still under the egress policy.
    """

    server: str = Field(min_length=1, max_length=PROXY_SERVER_MAX)
    username: str | None = Field(default=None, max_length=PROXY_CREDENTIAL_MAX, repr=False)
    password: str | None = Field(default=None, max_length=PROXY_CREDENTIAL_MAX, repr=False)
    bypass: str | None = Field(default=None, max_length=PROXY_BYPASS_MAX)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        host, port = split_proxy_server(value)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @field_validator("username", "password")
    @classmethod
    def _credential(cls, value: str | None) -> str | None:
        if value is not None and not _VISIBLE.fullmatch(value):
            raise ValueError("may hold printable ASCII characters only")
        return value

    @field_validator("bypass")
    @classmethod
    def _bypass(cls, value: str | None) -> str | None:
        if value is None:
            return None
        rules = bypass_rules(value)
        return ",".join(rules) or None

    @model_validator(mode="after")
    def _pair(self) -> ProxyOptions:
        if self.username is not None and ":" in self.username:
            raise ValueError("proxy.username may not contain ':' (Basic auth splits there)")
        if self.password is not None and self.username is None:
            raise ValueError("proxy.password needs proxy.username")
        return self

    @property
    def host(self) -> str:
        return split_proxy_server(self.server)[0]

    @property
    def port(self) -> int:
        return split_proxy_server(self.server)[1]


def split_proxy_server(value: str) -> tuple[str, int]:
    """``http://host:port`` (or ``host:port``) as ``(host, port)``; ``ValueError`` naming
    what is wrong."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("is not host:port or http://host:port (bad port?)") from None
    scheme = parts.scheme.lower()
    if scheme != "http":
        raise ValueError(
            f"{scheme}:// proxies are not supported: send an http:// proxy (it tunnels "
            "https:// with CONNECT)"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("credentials go in proxy.username and proxy.password, not in the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be http://host:port, with no path, query or fragment")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValueError("has no host")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{host!r} is not a host name or an IP address") from None
    return host, port or 80


def bypass_rules(value: str) -> list[str]:
    """The entries of a ``proxy.bypass`` list, checked: host patterns (``*`` wildcards, a
    leading ``.`` for subdomains, an optional ``:port``), IP networks, or ``<local>``."""
    rules = [part.strip().lower() for part in re.split(r"[,;]", value) if part.strip()]
    if len(rules) > PROXY_BYPASS_RULES_MAX:
        raise ValueError(f"lists {len(rules)} rules; at most {PROXY_BYPASS_RULES_MAX}")
    for rule in rules:
        if rule == "<local>":
            continue
        try:
            ipaddress.ip_network(rule.strip("[]"), strict=False)
            continue
        except ValueError:
            pass
        host, _, port = rule.rpartition(":") if rule.count(":") == 1 else (rule, "", "")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"{rule!r}: bad port")
        if not _BYPASS_HOST.fullmatch(host):
            raise ValueError(
                f"{rule!r} is not a host pattern (.example.com, *.internal, host:8080), "
                "an IP network (10.0.0.0/8) or <local>"
            )
    return rules


@lru_cache(maxsize=1)
def time_zones() -> frozenset[str]:
    """The IANA zone names this machine knows (system tzdata, else the tzdata package)."""
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def check_time_zone(value: str) -> str:
    if value in time_zones():
        return value
    close = difflib.get_close_matches(value, sorted(time_zones()), n=3, cutoff=0.6)
    lowered = {z.lower(): z for z in time_zones()}
    if value.lower() in lowered:
        close = [lowered[value.lower()]]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"{value!r} is not an IANA time zone name like Europe/Berlin or America/New_York{hint}"
    )


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """Bounded, injection-free extra headers (names keep the caller's spelling)."""
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"has {len(headers)} headers; at most {MAX_HEADERS}")
    seen: set[str] = set()
    total = 0
    for name, value in headers.items():
        lowered = name.lower()
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name.strip()[:64]!r} has a CR or LF (header injection)")
        if not _TOKEN.fullmatch(name) or len(name) > HEADER_NAME_MAX:
            raise ValueError(
                f"{name[:64]!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~, "
                f"at most {HEADER_NAME_MAX})"
            )
        if lowered in REFUSED_HEADERS or lowered.startswith("proxy-"):
            raise ValueError(
                f"{name!r} may not be set: hop-by-hop, Host, Content-Length and Proxy-* headers "
                "are the browser's and the proxies' own"
            )
        if lowered in seen:
            raise ValueError(f"{name!r} is given twice (header names ignore case)")
        seen.add(lowered)
        if not _PRINTABLE.fullmatch(value) or len(value) > HEADER_VALUE_MAX:
            raise ValueError(
                f"the value of {name!r} must be printable ASCII, at most {HEADER_VALUE_MAX} "
                "characters"
            )
        total += len(name) + len(value) + 4
    if total > HEADERS_TOTAL_MAX:
        raise ValueError(f"adds {total} bytes of headers; at most {HEADERS_TOTAL_MAX}")
    return headers


OPTION_FIELDS = (
    "viewport",
    "device",
    "user_agent",
    "locale",
    "timezone_id",
    "geolocation",
    "permissions",
    "color_scheme",
    "extra_http_headers",
    "java_script_enabled",
    "block_resources",
    "proxy",
)


class BrowserOptionFields(BaseModel):
    """The browser options of a new session (a mixin of every session body)."""

    viewport: Viewport | None = Field(
        default=None, description="the page's size in CSS pixels, each side 200 to 3840"
    )
    device: str | None = Field(
        default=None,
        min_length=1,
        max_length=DEVICE_NAME_MAX,
        description='a Playwright device descriptor such as "iPhone 13": viewport, user agent, '
        "scale, touch and isMobile (explicit fields win over it)",
    )
    user_agent: str | None = Field(
        default=None, min_length=1, max_length=USER_AGENT_MAX, description="navigator.userAgent"
    )
    locale: str | None = Field(
        default=None,
        min_length=2,
        max_length=LOCALE_MAX,
        description="a BCP 47 language tag, e.g. de-DE (navigator.language, Accept-Language)",
    )
    timezone_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="an IANA time zone, e.g. Asia/Tokyo"
    )
    geolocation: Geolocation | None = Field(
        default=None, description="the position the page sees; grants the geolocation permission"
    )
    permissions: list[Permission] | None = Field(
        default=None, max_length=MAX_PERMISSIONS, description="permissions granted to every origin"
    )
    color_scheme: ColorScheme | None = Field(
        default=None, description="prefers-color-scheme: light, dark or no-preference"
    )
    extra_http_headers: dict[str, str] | None = Field(
        default=None,
        description=f"headers sent with every request (at most {MAX_HEADERS}, "
        f"{HEADERS_TOTAL_MAX} bytes; no CR/LF, hop-by-hop, Host or Proxy-*)",
    )
    java_script_enabled: bool | None = Field(
        default=None, description="false: the pages' own scripts do not run"
    )
    block_resources: list[ResourceType] | None = Field(
        default=None,
        max_length=len(RESOURCE_TYPES),
        description="resource types never fetched: image, media, font, stylesheet",
    )
    proxy: ProxyOptions | None = Field(
        default=None,
        description="an upstream http:// proxy for this session, chained behind the egress "
        "proxy (its address must pass the egress policy)",
    )

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str | None) -> str | None:
        if value is not None and not _VISIBLE.fullmatch(value):
            raise ValueError("must be printable ASCII (no CR, LF or other control characters)")
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is not None and not _BCP47.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a BCP 47 language tag like en-US, de-DE, pt-BR or zh-Hant-TW"
            )
        return value

    @field_validator("timezone_id")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_time_zone(value)

    @field_validator("extra_http_headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else check_headers(value)

    @field_validator("permissions", "block_resources")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _only_for_new_sessions(self) -> BrowserOptionFields:
        session_id = getattr(self, "session_id", None)
        given = [name for name in OPTION_FIELDS if name in self.model_fields_set]
        if session_id is not None and given:
            raise InvalidInput(
                f"invalid request: {given[0]}: browser options apply when a session is "
                "created; leave out session_id to start a new session with them, or drop "
                f"{', '.join(given)}",
                fields=[
                    {
                        "field": name,
                        "message": "applies only to a new session (no session_id)",
                        "fix": "leave out session_id, or drop this field",
                    }
                    for name in given
                ],
            )
        return self

    def browser_options(self) -> BrowserOptions | None:
        """The options this request gave, or None for a default context."""
        given = {name: getattr(self, name) for name in OPTION_FIELDS if getattr(self, name)}
        given.update(
            {
                name: getattr(self, name)
                for name in ("java_script_enabled",)
                if getattr(self, name) is not None
            }
        )
        return BrowserOptions.model_construct(**given) if given else None


class BrowserOptions(BrowserOptionFields):
    """The options alone, as the host takes them (see :mod:`flask_sessions.host.options`)."""

    model_config = ConfigDict(extra="forbid")

    def view(self) -> SessionOptions:
        """What the session record shows: everything but credentials and header values."""
        proxy = None
        if self.proxy is not None:
            proxy = ProxyView(
                server=self.proxy.server,
                bypass=self.proxy.bypass,
                authenticated=self.proxy.username is not None,
            )
        return SessionOptions(
            viewport=self.viewport,
            device=self.device,
            user_agent=self.user_agent,
            locale=self.locale,
            timezone_id=self.timezone_id,
            geolocation=self.geolocation,
            permissions=list(self.permissions) if self.permissions else None,
            color_scheme=self.color_scheme,
            extra_http_headers=sorted(self.extra_http_headers) if self.extra_http_headers else None,
            java_script_enabled=self.java_script_enabled,
            block_resources=list(self.block_resources) if self.block_resources else None,
            proxy=proxy,
        )


class ProxyView(BaseModel):
    """A session's upstream proxy as its record shows it: never its credentials."""

    server: str
    bypass: str | None = None
    authenticated: bool = Field(description="whether username/password were given (not shown)")


class SessionOptions(BaseModel):
    """The browser options a session was started with (null: the server's defaults).

    Header values and proxy credentials are left out: ``extra_http_headers`` lists the
    header names only, ``proxy`` says whether it authenticates.
    """

    viewport: Viewport | None = None
    device: str | None = None
    user_agent: str | None = None
    locale: str | None = None
    timezone_id: str | None = None
    geolocation: Geolocation | None = None
    permissions: list[str] | None = None
    color_scheme: str | None = None
    extra_http_headers: list[str] | None = Field(
        default=None, description="the names of the extra headers (their values are not shown)"
    )
    java_script_enabled: bool | None = None
    block_resources: list[str] | None = None
    proxy: ProxyView | None = None


def unknown_device(name: str, known: list[str]) -> InvalidInput:
    """400 for a ``device`` Playwright does not describe, listing the close names."""
    lowered = {d.lower(): d for d in known}
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    if name.lower() in lowered:
        close = [lowered[name.lower()]]
    elif not close:
        close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.4)
        close = [lowered[c] for c in close]
    suggestion = f"did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    fix = suggestion or 'send a Playwright device name such as "iPhone 13" or "Pixel 7"'
    return InvalidInput(
        f"invalid request: device: {name!r} is not one of Playwright's {len(known)} device "
        f"descriptors ({fix})",
        fields=[
            {
                "field": "device",
                "message": f"is not one of Playwright's device descriptors{'; ' if close else ''}"
                f"{suggestion}",
                "fix": fix,
                "got": name[:200],
                "close_matches": close,
            }
        ],
    )


# The _HINTS entries of these fields (schemas.py merges them into its table).
HINTS = {
    "viewport": 'send {"width": 1280, "height": 720}, each side 200 to 3840',
    "viewport.width": "send a whole number of CSS pixels from 200 to 3840",
    "viewport.height": "send a whole number of CSS pixels from 200 to 3840",
    "device": 'send a Playwright device name such as "iPhone 13" or "Pixel 7"',
    "user_agent": f"send a printable ASCII user agent of at most {USER_AGENT_MAX} characters",
    "locale": "send a BCP 47 language tag such as en-US or de-DE",
    "timezone_id": "send an IANA time zone such as Europe/Berlin or America/New_York",
    "geolocation": 'send {"latitude": 52.52, "longitude": 13.40, "accuracy": 10}',
    "geolocation.latitude": "send a number from -90 to 90",
    "geolocation.longitude": "send a number from -180 to 180",
    "geolocation.accuracy": "send meters from 0 to 100000",
    "permissions": "send a list of: " + ", ".join(PERMISSIONS),
    "color_scheme": "send light, dark or no-preference",
    "extra_http_headers": f'send {{"Header-Name": "value"}}, at most {MAX_HEADERS} headers, '
    "no CR/LF, no hop-by-hop, Host or Proxy-* headers",
    "java_script_enabled": "send true or false",
    "block_resources": "send a list of: " + ", ".join(RESOURCE_TYPES),
    "proxy": 'send {"server": "http://host:3128", "username": "…", "password": "…"}',
    "proxy.server": "send http://host:port (credentials in proxy.username/proxy.password)",
    "proxy.username": "send the proxy's user name (printable ASCII, no ':')",
    "proxy.password": "send the proxy's password (printable ASCII)",
    "proxy.bypass": "send comma-separated hosts to reach directly: .example.com, 10.0.0.0/8",
}

NESTED_FIELDS = {
    "viewport": "width, height",
    "geolocation": "latitude, longitude, accuracy",
    "proxy": "server, username, password, bypass",
}
"""The fields each nested option takes (named when an unknown one is sent)."""

NO_ECHO = frozenset({"proxy", "extra_http_headers"})
"""Fields whose wrong value is never echoed back in an error's ``got`` (credentials)."""

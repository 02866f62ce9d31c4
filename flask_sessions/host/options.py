"""A start's browser options on the host's loop: Playwright ``new_context`` kwargs and setup.

:func:`plan_context` turns validated :class:`~flask_sessions.options.BrowserOptions` into a
:class:`~flask_sessions.host.live.ContextPlan`:

- ``device`` → the driver's own descriptor (viewport, screen, user agent, scale, touch,
  ``is_mobile``); explicit fields win over it. A name the driver does not know is a 400
  listing the close ones (the front cannot check it: only a host runs the driver);
- ``viewport``, ``user_agent``, ``locale``, ``timezone_id``, ``color_scheme``,
  ``extra_http_headers``, ``java_script_enabled``, ``permissions`` → the same-named
  ``new_context`` options; ``geolocation`` also grants the ``geolocation`` permission.
  Playwright applies each of them to every page of the context before the page runs: the
  first page, popups, and pages a CDP client opens (the driver auto-attaches to every
  target of its contexts and holds it until its emulation is in place);
- ``block_resources`` → one context route (:func:`block_route`) that aborts requests of
  those types, installed before the first page, and ``service_workers="block"`` (a service
  worker's fetches would bypass the route);
- ``proxy`` → a listener of its own on the egress proxy that chains to the upstream proxy
  (host/upstream.py), checked against the egress policy first (a 400 if its address is
  refused), closed with the context.

Why a route for ``block_resources`` (the measurements are in the README's Performance
section): it is the cheapest mechanism that holds for every page. ``Network.setBlockedURLs``
matches URLs, not resource types (an image without an extension passes). A CDP
``Fetch.enable`` with ``resourceType`` patterns pauses only the blocked types and costs
nothing for the others, but it is per target and can only be set up once the page exists:
measured, 20 popups out of 20 had fetched their image before it was in place (Playwright
emits a page after resuming it). Playwright installs its own interception while it holds a
new target, before the target runs, so nothing slips through; the price is a round trip
through the driver and this process for every request of that context (and its HTTP cache
off), paid only by sessions that ask for it.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from playwright.async_api import BrowserContext, Route
from playwright.async_api import Error as PlaywrightError

from flask_sessions.errors import InvalidInput
from flask_sessions.host.egress import EgressProxy, _Refused
from flask_sessions.host.live import ContextPlan
from flask_sessions.host.upstream import Upstream, open_route
from flask_sessions.options import BrowserOptions, unknown_device

if TYPE_CHECKING:
    from flask_sessions.host.runtime import BrowserRuntime

# what a descriptor holds that new_context takes
_DEVICE_KEYS = ("viewport", "screen", "user_agent", "device_scale_factor", "is_mobile", "has_touch")


async def plan_context(options: BrowserOptions, runtime: BrowserRuntime) -> ContextPlan:
    """The context plan for ``options`` (raises ``InvalidInput`` for a wrong device or a
    proxy the egress policy refuses). Its ``cleanup`` must run if the plan is not used."""
    plan = ContextPlan(explain=chromium_refusal)
    kwargs = plan.kwargs
    if options.device is not None:
        devices = await runtime.devices()
        descriptor = devices.get(options.device)
        if descriptor is None:
            raise unknown_device(options.device, list(devices))
        kwargs.update({k: descriptor[k] for k in _DEVICE_KEYS if k in descriptor})
    if options.viewport is not None:
        kwargs["viewport"] = options.viewport.model_dump()
    for name in ("user_agent", "locale", "timezone_id", "color_scheme", "java_script_enabled"):
        value = getattr(options, name)
        if value is not None:
            kwargs[name] = value
    if options.extra_http_headers:
        kwargs["extra_http_headers"] = dict(options.extra_http_headers)
    permissions = list(options.permissions or ())
    if options.geolocation is not None:
        kwargs["geolocation"] = options.geolocation.model_dump()
        if "geolocation" not in permissions:
            permissions.append("geolocation")
    if permissions:
        kwargs["permissions"] = permissions
    if options.block_resources:
        kwargs["service_workers"] = "block"
        plan.setup.append(functools.partial(block_route, types=frozenset(options.block_resources)))
    if options.proxy is not None:
        upstream = Upstream.from_options(options.proxy)
        chain = await runtime.chain_proxy()
        await check_upstream(chain, upstream)
        route = await open_route(chain, upstream)
        plan.cleanup.append(route.close)
        kwargs["proxy"] = {"server": route.url}
    return plan


async def check_upstream(chain: EgressProxy, upstream: Upstream) -> None:
    """400 unless the upstream proxy's address passes the egress policy (and resolves)."""
    try:
        await chain._resolve(upstream.host, upstream.port)
    except _Refused as refused:
        if refused.status == 403:
            message = f"the proxy's address is {refused.message}"
            fix = "use a proxy on an address the server's egress policy allows"
        else:
            message = f"the proxy's address could not be resolved: {refused.message}"
            fix = "send a proxy host name the server can resolve, or its IP address"
        raise InvalidInput(
            f"invalid request: proxy.server: {message} ({fix})",
            fields=[{"field": "proxy.server", "message": message, "fix": fix}],
        ) from None


# Chromium's words when it refuses an option the front let through, and the field it is.
_REFUSALS = {
    "Invalid locale name": ("locale", "send a BCP 47 language tag Chromium knows, e.g. en-US"),
    "Invalid timezone ID": ("timezone_id", "send an IANA time zone Chromium knows"),
}


def chromium_refusal(exc: BaseException) -> InvalidInput | None:
    """A 400 for an option Chromium refused when the context or its page was made."""
    if not isinstance(exc, PlaywrightError):
        return None
    for words, (name, fix) in _REFUSALS.items():
        if words in str(exc):
            message = f"Chromium refused it ({words})"
            return InvalidInput(
                f"invalid request: {name}: {message} ({fix})",
                fields=[{"field": name, "message": message, "fix": fix}],
            )
    return None


def pin_color_scheme(params: dict[str, Any], plan: ContextPlan | None) -> dict[str, Any]:
    """A CDP client's ``Emulation.setEmulatedMedia`` with the session's ``color_scheme`` in
    place of its own ``prefers-color-scheme`` (called by the CDP proxy, host/cdp.py).

    Playwright's ``connect_over_cdp`` sends ``prefers-color-scheme: light`` to every page
    it attaches to (its default context's default), the session's own page included; without
    this a client that only connects would turn a dark session light.
    """
    scheme = plan.kwargs.get("color_scheme") if plan is not None else None
    features = params.get("features")
    if scheme is None or not isinstance(features, list):
        return params
    pinned = [
        {**f, "value": scheme}
        if isinstance(f, dict) and f.get("name") == "prefers-color-scheme"
        else f
        for f in features
    ]
    return {**params, "features": pinned}


async def block_route(context: BrowserContext, types: Collection[str]) -> None:
    """Abort every request of ``types`` (Playwright resource types) in ``context``."""

    async def handle(route: Route) -> None:
        try:
            if route.request.resource_type in types:
                await route.abort("blockedbyclient")
            else:
                await route.fallback()
        except PlaywrightError:
            pass  # the page or context went away meanwhile

    await context.route("**/*", handle)

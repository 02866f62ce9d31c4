"""Pages for the perception tests (issue 11), served from 127.0.0.1 only.

One page per kind of real-site trouble: web components (open shadow roots), a login form in
a same-origin iframe, a widget in a cross-origin iframe (served by a second server on
127.0.0.2), a client-side routed app, infinite scroll, new tabs, dialogs, a cookie overlay,
2,000 links, a superseded navigation, a page whose script never yields, a hover menu,
``<select multiple>``, ARIA comboboxes and listboxes, and a table with ``|`` in its cells.

:func:`start_site` starts both servers; ``OTHER`` in a page is replaced by the other
origin's base URL.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def page(title: str, body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>body{{font-family:sans-serif;margin:1em}}</style>{head}</head>"
        f"<body>{body}</body></html>"
    )


NEWSLETTER = """
<h1>Our blog</h1><p>Read the latest posts.</p>
<x-newsletter></x-newsletter>
<fancy-button id="more">Read more</fancy-button>
<p>Footer text</p>
<script>
customElements.define('x-newsletter', class extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({mode: 'open'});
    root.innerHTML = `
      <style>form{border:1px solid #ccc;padding:1em}</style>
      <form>
        <h2 id="nl-title">Join the newsletter</h2>
        <label for="email">Email address</label> <input id="email" type="email">
        <input id="nick" placeholder="Nickname">
        <button type="submit" aria-labelledby="nl-title">Go</button>
      </form>
      <p id="done"></p>`;
    root.querySelector('form').addEventListener('submit', (e) => {
      e.preventDefault();
      const email = root.getElementById('email').value;
      root.getElementById('done').textContent = 'Thanks, ' + email + '!';
    });
  }
});
customElements.define('fancy-button', class extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({mode: 'open'});
    root.innerHTML = '<button><slot></slot></button>';
    root.querySelector('button').addEventListener('click', () => {
      document.title = 'More read';
    });
  }
});
</script>"""

FRAME_OUTER = """<h1>Members area</h1><p>Please log in below.</p>
<iframe src="/frame/login" title="Login" style="width:600px;height:300px"></iframe>"""

FRAME_LOGIN = """<form method="get" action="/frame/welcome">
<label for="u">Username</label> <input id="u" name="user">
<label for="p">Password</label> <input id="p" name="password" type="password">
<button type="submit">Sign in</button></form>"""

CROSS_OUTER = """<h1>News</h1><p>An embedded widget from another site:</p>
<iframe src="OTHER/widget" title="Like widget" style="width:400px;height:200px"></iframe>"""

WIDGET = """<p id="state">Nobody likes this yet</p>
<button onclick="document.getElementById('state').textContent='You liked this'">Like</button>"""

SPA = """<nav><a href="/spa" data-route>Home</a> <a href="/spa/orders" data-route>Orders</a></nav>
<main id="view"><h1>Shop home</h1></main>
<script>
const view = document.getElementById('view');
async function show(path) {
  if (path === '/spa/orders') {
    view.innerHTML = '<p>Loading…</p>';
    const response = await fetch('/api/orders?delay=300');
    const orders = await response.json();
    view.innerHTML = '<h1>Your orders</h1><ul>' +
      orders.map((o) => `<li><a href="/spa/orders/${o}">Order #${o}</a></li>`).join('') + '</ul>';
  } else {
    view.innerHTML = '<h1>Shop home</h1>';
  }
}
document.addEventListener('click', (e) => {
  const link = e.target.closest('a[data-route]');
  if (!link) return;
  e.preventDefault();
  history.pushState({}, '', link.getAttribute('href'));
  show(link.getAttribute('href'));
});
</script>"""

INFINITE = """<h1>Feed</h1><ul id="items"></ul><p id="sentinel">Loading more…</p>
<script>
let next = 1;
const list = document.getElementById('items');
function add(items) {
  for (const item of items) {
    const li = document.createElement('li');
    li.style.height = '60px';
    li.innerHTML = `<a href="/item/${item}">Item ${item}</a>`;
    list.appendChild(li);
  }
}
add(Array.from({length: 20}, (_, i) => i + 1)); next = 21;
let loading = false;
new IntersectionObserver(async (entries) => {
  if (!entries.some((e) => e.isIntersecting) || loading) return;
  loading = true;
  const response = await fetch('/api/items?from=' + next + '&delay=200');
  const items = await response.json();
  add(items); next += items.length; loading = false;
}).observe(document.getElementById('sentinel'));
</script>"""

TABS = """<h1>Links</h1>
<a href="/tabs/child" target="_blank">Open the report</a>
<button onclick="window.open('/tabs/popup')">Open a popup</button>"""

DIALOGS = """<h1>Account</h1><p id="status">Active</p>
<button onclick="if (confirm('Really delete your account?')) {
  document.getElementById('status').textContent = 'Deleted'; }">Delete account</button>
<button onclick="alert('Hello there')">Say hi</button>
<button onclick="const n = prompt('Your name?', 'nobody');
  document.getElementById('status').textContent = 'Hi, ' + n;">Name</button>"""

COVERED = """<h1>Shop</h1><button onclick="document.title='Bought'">Buy now</button>
<div id="cookie-banner" style="position:fixed;inset:0;background:rgba(0,0,0,.6);z-index:9">
  <div style="background:white;margin:20% auto;width:300px;padding:1em">
    <p>We use cookies to improve your experience.</p>
    <button onclick="document.getElementById('cookie-banner').remove()">Accept all</button>
  </div></div>"""

LONG = "<h1>Directory</h1>" + "".join(
    f"<p><a href='/long/{i}'>Link {i}</a></p>" for i in range(1, 2001)
)

ABORTED = """<h1>Redirecting</h1><script>
location.href = '/slow?ms=3000';
setTimeout(() => { location.href = '/landing'; }, 150);
</script>"""

HUNG = """<h1>Busy page</h1>
<button onclick="while (true) {}">Spin</button><a href="/landing">Landing</a>"""

HOVER = """<style>
  .menu .sub { display: none } .menu:hover .sub { display: block }
</style>
<h1>Store</h1>
<div class="menu"><button>Products</button>
  <div class="sub"><a href="/laptops">Laptops</a> <a href="/phones">Phones</a></div></div>
<div style="height:300px"></div>"""

SELECTS = """<h1>Pizza</h1>
<label for="top">Toppings</label>
<select id="top" multiple size="4">
  <option value="cheese">Cheese</option><option value="olives">Olives</option>
  <option value="ham">Ham</option><option value="basil">Basil</option></select>
<label for="size">Size</label>
<select id="size"><option>Small</option><option>Large</option></select>

<p>Country</p>
<div id="country" role="combobox" tabindex="0" aria-controls="countries"
     aria-expanded="false" aria-label="Country">Choose…</div>
<ul id="countries" role="listbox" hidden>
  <li role="option">France</li><li role="option">Germany</li><li role="option">Spain</li>
</ul>

<div role="listbox" aria-label="Colours" aria-multiselectable="true" id="colours">
  <div role="option" aria-selected="false">Red</div>
  <div role="option" aria-selected="false">Green</div>
  <div role="option" aria-selected="false">Blue</div></div>

<label for="city">City</label>
<input id="city" role="combobox" aria-controls="cities" autocomplete="off">
<ul id="cities" role="listbox"></ul>
<script>
const combo = document.getElementById('country');
const list = document.getElementById('countries');
combo.addEventListener('click', () => {
  list.hidden = false; combo.setAttribute('aria-expanded', 'true');
});
list.addEventListener('click', (e) => {
  const option = e.target.closest('[role=option]');
  if (!option) return;
  combo.textContent = option.textContent;
  list.hidden = true; combo.setAttribute('aria-expanded', 'false');
});
document.getElementById('colours').addEventListener('click', (e) => {
  const option = e.target.closest('[role=option]');
  if (option) option.setAttribute('aria-selected',
    option.getAttribute('aria-selected') === 'true' ? 'false' : 'true');
});
const city = document.getElementById('city');
const cities = document.getElementById('cities');
const ALL = ['Paris', 'Berlin', 'Madrid', 'Porto'];
city.addEventListener('input', () => {
  const q = city.value.toLowerCase();
  cities.innerHTML = q ? ALL.filter((c) => c.toLowerCase().startsWith(q))
    .map((c) => `<li role="option">${c}</li>`).join('') : '';
});
cities.addEventListener('click', (e) => {
  const option = e.target.closest('[role=option]');
  if (option) { city.value = option.textContent; cities.innerHTML = ''; }
});
</script>"""

TABLE = """<h1>Operators</h1><table><thead><tr><th>Symbol</th><th>Meaning</th></tr></thead>
<tbody><tr><td>a | b</td><td>either<br>or both</td></tr>
<tr><td>a &amp; b</td><td>both</td></tr></tbody></table>"""

NAMES = """<h1>Names</h1>
<label>Full name <input name="fn"></label>
<span id="zip-label">Postcode</span><input aria-labelledby="zip-label">
<input placeholder="Search the site">
<button aria-label="Close dialog">×</button>
<a href="/home"><img src="data:," alt="Home page" width="20" height="20"></a>
<label for="plan">Plan</label><select id="plan"><option>Free</option><option>Pro</option></select>
<input type="checkbox" id="terms"><label for="terms">I accept the terms</label>
<div role="button" tabindex="0" onclick="void 0">Custom action</div>
<textarea title="Comments"></textarea>
<button><svg width="10" height="10"><title>Settings</title>
<circle cx="5" cy="5" r="4"/></svg></button>
<form><input type="submit"></form>
<label>Country <select><option>France</option><option>Spain</option></select></label>
<span id="first">Billing</span><span id="second">address</span>
<input aria-labelledby="first second">"""


STATIC: dict[str, tuple[str, str]] = {
    "/shadow": ("Newsletter", NEWSLETTER),
    "/frame": ("Members", FRAME_OUTER),
    "/frame/login": ("Login form", FRAME_LOGIN),
    "/cross": ("News", CROSS_OUTER),
    "/spa": ("Shop", SPA),
    "/spa/orders": ("Shop", SPA),
    "/infinite": ("Feed", INFINITE),
    "/tabs": ("Links", TABS),
    "/tabs/child": ("Quarterly report", "<h1>Report</h1><p>Sales went up.</p>"),
    "/tabs/popup": ("Popup", "<h1>Popup</h1><p>A popup window.</p>"),
    "/dialogs": ("Dialogs", DIALOGS),
    "/covered": ("Shop", COVERED),
    "/long": ("Directory", LONG),
    "/aborted": ("Redirecting", ABORTED),
    "/landing": (
        "Landing",
        "<h1>Landing</h1><p>All good.</p><p id='c'></p>"
        "<script>document.getElementById('c').textContent="
        "'cookie: ' + document.cookie</script>",
    ),
    "/hung": ("Busy", HUNG),
    "/spin": ("Spinning", "<h1>Spinning</h1><script>while (true) {}</script>"),
    "/hover": ("Store", HOVER),
    "/laptops": ("Laptops", "<h1>Laptops</h1>"),
    "/selects": ("Pizza", SELECTS),
    "/table": ("Operators", TABLE),
    "/names": ("Names", NAMES),
    "/boot": (
        "Dashboard",
        "<h1>Dashboard</h1><p id='v'>Loading…</p><script>fetch('/api/orders?delay=300')"
        ".then((r) => r.json()).then((o) => { document.getElementById('v').textContent = "
        "'Orders: ' + o.join(', '); });</script>",
    ),
    "/greeting": ("Greeting", "<h1>Hello</h1><script>alert('Welcome back!')</script>"),
    "/static": ("Static", "<h1>Static</h1><p>Nothing moves here.</p><a href='/landing'>Go</a>"),
}


def _delay(query: dict[str, list[str]]) -> None:
    time.sleep(min(int(query.get("delay", ["0"])[0]), 5000) / 1000)


def _dynamic(path: str, query: dict[str, list[str]]) -> tuple[int, str, str] | None:
    """(status, content type, body) of the API and parameterised pages."""
    if path == "/api/orders":
        _delay(query)
        return 200, "application/json", json.dumps([101, 102, 103])
    if path == "/api/items":
        _delay(query)
        start = int(query.get("from", ["1"])[0])
        return 200, "application/json", json.dumps(list(range(start, start + 20)))
    if path == "/slow":
        time.sleep(min(int(query.get("ms", ["1000"])[0]), 10000) / 1000)
        return 200, "text/html", page("Slow", "<p>finally</p>")
    if path == "/frame/welcome":
        user = html.escape(query.get("user", ["?"])[0])
        return 200, "text/html", page("Welcome", f"<p>Welcome, {user}!</p>")
    if path.startswith("/long/"):
        return 200, "text/html", page("Target", f"<h1>You picked {html.escape(path[6:])}</h1>")
    if path == "/set-cookie":
        return 200, "text/html", page("Cookie", "<p>cookie set</p>")
    return None


def _handler(other: Callable[[], str], widget: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            headers = {}
            found: tuple[int, str, str] | None = None
            if widget:  # the second origin serves only the widget
                if parts.path == "/widget":
                    found = (200, "text/html", page("Widget", WIDGET))
            elif parts.path in STATIC:
                title, body = STATIC[parts.path]
                found = (200, "text/html", page(title, body.replace("OTHER", other())))
            else:
                found = _dynamic(parts.path, query)
                if parts.path == "/set-cookie":
                    headers["Set-Cookie"] = "visitor=alice; Path=/"
            missing = (404, "text/html", page("Not found", "<p>No such page.</p>"))
            status, kind, body = found or missing
            data = body.encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser gave up on it (a stopped load)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class Site:
    """The two servers: ``base`` (127.0.0.1) and ``other`` (127.0.0.2, the widget)."""

    def __init__(self) -> None:
        self.main = ThreadingHTTPServer(("127.0.0.1", 0), _handler(lambda: self.other, False))
        self.second = ThreadingHTTPServer(("127.0.0.2", 0), _handler(lambda: self.other, True))
        self.main.daemon_threads = self.second.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.main.server_address[1]}"
        self.other = f"http://127.0.0.2:{self.second.server_address[1]}"
        for server in (self.main, self.second):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self.main, self.second):
            server.shutdown()
            server.server_close()


def start_site() -> Site:
    return Site()

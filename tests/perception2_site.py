"""Pages for the perception II tests (issue 22), served from 127.0.0.1 only.

One page per pattern an agent met on real sites: a kanban board (HTML5 drag and drop), a
sortable list (a pointer-event library), a canvas with a drawn button, elements that only a
click listener or ``cursor: pointer`` marks, scroll boxes (a chat log, a side panel), a
virtualised grid driven by keys, an OAuth-style popup that closes itself, form fields with
their state (read-only, invalid, described), a busy region, a long page of text, a rich-text
editor, a button that opens a listbox beside another listbox, and a debounced autocomplete.

Every page reports what happened to the server (``/api/...``), so a test judges a step by
what the server received (:meth:`Site.received`), not by our own observation alone. Requests
the tests time (``/api/hold``, ``/api/close-signal``) wait on events the test sets.
"""

from __future__ import annotations

import html
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def page(title: str, body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>body{{font-family:sans-serif;margin:1em}}</style>{head}</head>"
        f"<body>{body}</body></html>"
    )


REPORT = "const report = (path) => fetch(path, {cache: 'no-store'});"

KANBAN = (
    """<style>
  .column { display: inline-block; vertical-align: top; width: 220px; min-height: 160px;
            border: 1px solid #999; margin: 8px; padding: 4px }
  .card { border: 1px solid #333; margin: 4px; padding: 8px; background: #eef }
</style>
<h1>Board</h1>
<div class="column" id="todo" aria-label="To do"><h2>To do</h2>
  <div class="card" draggable="true" id="c1">Write spec</div>
  <div class="card" draggable="true" id="c2">Fix bug</div></div>
<div class="column" id="done" aria-label="Done"><h2>Done</h2></div>
<p id="note">No moves yet</p>
<script>"""
    + REPORT
    + """
for (const card of document.querySelectorAll('.card')) {
  card.addEventListener('dragstart', (e) => {
    e.dataTransfer.setData('text/plain', card.id);
    e.dataTransfer.effectAllowed = 'move';
  });
}
for (const column of document.querySelectorAll('.column')) {
  column.addEventListener('dragover', (e) => e.preventDefault());
  column.addEventListener('drop', (e) => {
    e.preventDefault();
    const card = document.getElementById(e.dataTransfer.getData('text/plain'));
    column.appendChild(card);
    document.getElementById('note').textContent = card.textContent + ' moved to ' +
      column.getAttribute('aria-label');
    report('/api/move?card=' + card.id + '&to=' + column.id);
  });
}
</script>"""
)

SORTABLE = (
    """<style>
  #list { list-style: none; padding: 0; width: 240px }
  #list li { height: 40px; line-height: 40px; border: 1px solid #666; margin: 2px 0;
             padding-left: 8px; cursor: grab; user-select: none; background: #fff }
  #list li.lifted { opacity: .5 }
</style>
<h1>Priorities</h1>
<ul id="list"><li data-id="a">Item A</li><li data-id="b">Item B</li>
<li data-id="c">Item C</li><li data-id="d">Item D</li></ul>
<script>"""
    + REPORT
    + """
// a pointer-event sortable: press on an item, move, release over another place
const list = document.getElementById('list');
let lifted = null;
list.addEventListener('pointerdown', (e) => {
  const li = e.target.closest('li');
  if (!li) return;
  e.preventDefault();
  lifted = li; li.classList.add('lifted');
  list.setPointerCapture(e.pointerId);
});
list.addEventListener('pointermove', (e) => {
  if (!lifted) return;
  const items = [...list.children].filter((li) => li !== lifted);
  const before = items.find((li) => {
    const r = li.getBoundingClientRect();
    return e.clientY < r.bottom;  // over an item: take its place
  });
  list.insertBefore(lifted, before || null);
});
list.addEventListener('pointerup', () => {
  if (!lifted) return;
  lifted.classList.remove('lifted');
  lifted = null;
  report('/api/order?ids=' + [...list.children].map((li) => li.dataset.id).join(','));
});
</script>"""
)

CANVAS = (
    """<h1>Shop game</h1>
<canvas id="game" width="400" height="300" aria-label="Shop counter"
        style="border:1px solid #000"></canvas>
<p id="said">Nothing yet</p>
<script>"""
    + REPORT
    + """
const game = document.getElementById('game');
const g = game.getContext('2d');
g.fillStyle = '#eee'; g.fillRect(0, 0, 400, 300);
g.fillStyle = '#2a2'; g.fillRect(250, 200, 100, 40);
g.fillStyle = '#fff'; g.font = '20px sans-serif'; g.fillText('Buy', 280, 227);
const onButton = (x, y) => x >= 250 && x < 350 && y >= 200 && y < 240;
game.addEventListener('click', (e) => {
  const hit = onButton(e.offsetX, e.offsetY);
  document.getElementById('said').textContent =
    (hit ? 'Bought' : 'Missed') + ' at ' + e.offsetX + ',' + e.offsetY;
  report('/api/canvas?hit=' + (hit ? 'buy' : 'none') + '&x=' + e.offsetX + '&y=' + e.offsetY);
});
game.addEventListener('mousemove', (e) => {
  document.getElementById('said').textContent =
    onButton(e.offsetX, e.offsetY) ? 'Hovering over Buy' : 'Hovering elsewhere';
});
</script>"""
)

CLICKABLES = (
    """<style>.tile { cursor: pointer; display: inline-block; padding: 12px;
  border: 1px solid #aaa; margin: 4px } .tile span { padding: 2px }
  label.fancy { cursor: pointer }</style>
<h1>Dashboard</h1>
<div class="tile" id="t1"><span>Sales</span></div>
<div class="tile" id="t2"><span>Stock</span></div>
<span id="only-listener">Open inbox</span>
<div id="toolbar"><button>One</button><button>Two</button><button>Three</button>
  <button>Four</button></div>
<input type="checkbox" id="agree"><label class="fancy" for="agree">I agree</label>
<p id="picked">none</p>
<script>"""
    + REPORT
    + """
for (const tile of document.querySelectorAll('.tile')) {
  tile.addEventListener('click', () => {
    document.getElementById('picked').textContent = tile.textContent.trim();
    report('/api/tile?name=' + tile.textContent.trim());
  });
}
document.getElementById('only-listener').addEventListener('click', () => {
  report('/api/tile?name=inbox');
});
document.getElementById('toolbar').addEventListener('click', (e) => {
  if (e.target.tagName === 'BUTTON') report('/api/tool?name=' + e.target.textContent);
});
</script>"""
)

BOXES = (
    """<style>
  #log { height: 160px; overflow-y: auto; border: 1px solid #888; width: 400px }
  #log p { margin: 0; height: 24px }
  #panel { height: 120px; overflow: auto; border: 1px solid #888; width: 300px;
           margin-top: 8px }
  #panel a { display: block; height: 30px }
</style>
<h1>Support</h1>
<div id="log" aria-label="Chat log"></div>
<nav id="panel" aria-label="Records"></nav>
<script>"""
    + REPORT
    + """
const log = document.getElementById('log');
for (let i = 1; i <= 100; i++) {
  const p = document.createElement('p');
  p.textContent = 'Message ' + i + (i === 100 ? ': the end' : '');
  log.appendChild(p);
}
const panel = document.getElementById('panel');
for (let i = 1; i <= 20; i++) {
  const a = document.createElement('a');
  a.href = '/records/' + i; a.textContent = 'Record ' + i;
  panel.appendChild(a);
}
let timer = 0;
log.addEventListener('scroll', () => {  // which message is at the bottom, once still
  clearTimeout(timer);
  timer = setTimeout(() => {
    const last = Math.floor((log.scrollTop + log.clientHeight) / 24);
    report('/api/seen?box=log&last=' + last);
  }, 50);
});
panel.addEventListener('scroll', () => report('/api/seen?box=panel&top=' + panel.scrollTop));
</script>"""
)

TALL = """<h1>Tall page</h1><div style="height:3000px">Top</div><p>The foot of the page</p>"""

GRID = (
    """<style>
  #grid { height: 300px; overflow-y: auto; border: 1px solid #555; width: 400px;
          position: relative }
  #spacer { height: 30000px }
  .row { position: absolute; left: 0; right: 0; height: 30px; line-height: 30px }
</style>
<h1>Records</h1>
<div id="grid" tabindex="0" role="grid" aria-label="Records grid"><div id="spacer"></div></div>
<script>"""
    + REPORT
    + """
// a virtualised grid: 1,000 rows, only those in view exist; the same row elements are
// reused (recycled) and filled in on the frame after a scroll
const grid = document.getElementById('grid');
const pool = [];
for (let i = 0; i < 12; i++) {
  const row = document.createElement('div');
  row.className = 'row'; row.setAttribute('role', 'row');
  grid.appendChild(row); pool.push(row);
}
let shown = -1;
const render = () => {
  const first = Math.floor(grid.scrollTop / 30);
  if (first === shown) return;
  shown = first;
  pool.forEach((row, i) => {
    row.style.top = ((first + i) * 30) + 'px';
    row.textContent = 'Row ' + (first + i + 1);
  });
  report('/api/rendered?first=' + (first + 1));
};
render();
grid.addEventListener('scroll', () => requestAnimationFrame(render));
</script>"""
)

OPENER = """<h1>Shop</h1><p id="who">Not signed in</p>
<button onclick="window.open('/oauth?mode=' + document.body.dataset.mode, 'auth',
  'width=500,height=400')">Sign in with Provider</button>
<a href="/landing" id="next">Continue</a>
<script>
document.body.dataset.mode = new URLSearchParams(location.search).get('mode') || 'sync';
addEventListener('message', (e) => {
  if (e.data && e.data.user) document.getElementById('who').textContent =
    'Signed in as ' + e.data.user;
});
</script>"""

OAUTH = (
    """<h1>Provider</h1><p>Shop wants to know who you are.</p>
<button id="allow">Allow</button><p id="state">Waiting</p>
<script>"""
    + REPORT
    + """
const mode = new URLSearchParams(location.search).get('mode');
const done = () => { opener.postMessage({user: 'alice'}, '*'); window.close(); };
// settle, after: the popup closes itself when the test releases the signal
if (mode !== 'sync') fetch('/api/close-signal').then(done);
document.getElementById('allow').addEventListener('click', () => {
  navigator.sendBeacon('/api/allowed?mode=' + mode);  // a beacon outlives the window
  if (mode === 'sync') done();  // closes before the click returns
  // settle: a request the click starts is held, so the step is still settling when the
  // test, seeing it arrive, releases the signal
  else if (mode === 'settle') fetch('/api/hold');
  document.getElementById('state').textContent = 'Allowed';
});
</script>"""
)

CRASHY = (
    """<h1>Editor</h1><button id="save">Save</button>
<script>"""
    + REPORT
    + """
document.getElementById('save').addEventListener('click', () => fetch('/api/hold'));
</script>"""
)

FORMS = (
    """<h1>Booking</h1>
<form id="booking" action="/booked" method="get">
  <label for="date">Date</label>
  <input id="date" name="date" readonly aria-haspopup="dialog" placeholder="Pick a date">
  <button type="button" id="pick">Choose date</button>
  <div id="calendar" hidden role="dialog" aria-label="Calendar">
    <button type="button" class="day">11</button><button type="button" class="day">12</button>
  </div>
  <label for="email">Email</label>
  <input id="email" name="email" type="email" required aria-describedby="email-hint">
  <span id="email-hint">We never share it</span>
  <label for="user">Username</label>
  <input id="user" name="user" aria-errormessage="user-error">
  <span id="user-error" hidden></span>
  <button type="submit">Book</button>
</form>
<section id="report" aria-live="polite"><button id="load">Load report</button>
  <p id="report-state">No report</p></section>
<script>"""
    + REPORT
    + """
document.getElementById('pick').addEventListener('click', () => {
  document.getElementById('calendar').hidden = false;
});
for (const day of document.querySelectorAll('.day')) {
  day.addEventListener('click', () => {
    document.getElementById('date').value = '2024-05-' + day.textContent;
    document.getElementById('calendar').hidden = true;
  });
}
// the username is checked on the server as it is typed (debounced)
const user = document.getElementById('user');
let check = 0;
user.addEventListener('input', () => {
  clearTimeout(check);
  check = setTimeout(async () => {
    const answer = await (await fetch('/api/username?u=' + encodeURIComponent(user.value))).json();
    const error = document.getElementById('user-error');
    user.setAttribute('aria-invalid', answer.free ? 'false' : 'true');
    error.hidden = answer.free;
    error.textContent = answer.free ? '' : 'That name is taken';
  }, 300);
});
document.getElementById('load').addEventListener('click', () => {
  const section = document.getElementById('report');
  section.setAttribute('aria-busy', 'true');
  document.getElementById('report-state').textContent = 'Loading…';
  fetch('/api/slow-report').then((r) => r.text()).then((text) => {
    section.setAttribute('aria-busy', 'false');
    document.getElementById('report-state').textContent = text;
  });
});
</script>"""
)

LONG_TEXT = (
    "<h1>Terms</h1>"
    + "".join(
        f"<p>Clause {i}: the parties agree to section {i} of these terms.</p>"
        for i in range(1, 1201)
    )
    + "<p id='end'>Order confirmed: #A-1234</p>"
)

EDITOR = (
    """<h1>Compose</h1>
<div id="editor" contenteditable="true" role="textbox" aria-label="Message"
     style="border:1px solid #999;min-height:60px;padding:4px"><p>Hello <b>bold</b> and
<span style="font-style: italic">slanted</span> and <span style="font-weight: 700">heavy</span>
and <s>old</s> news.</p></div>
<label for="subject">Subject</label><input id="subject" value="Hello">
<button id="send">Send</button>
<script>"""
    + REPORT
    + """
document.getElementById('send').addEventListener('click', () => {
  fetch('/api/sent', {method: 'POST', body: JSON.stringify({
    html: document.getElementById('editor').innerHTML,
    subject: document.getElementById('subject').value})});
});
</script>"""
)

DROPDOWNS = (
    """<style>.menu { border: 1px solid #666; width: 160px }</style>
<h1>Settings</h1>
<p>Sort by</p>
<div role="listbox" aria-label="Sort by" class="menu">
  <div role="option" aria-selected="true">Newest</div>
  <div role="option" aria-selected="false">Oldest</div></div>
<p>Plan</p>
<button id="plan" aria-haspopup="listbox">Plan: Free</button>
<script>"""
    + REPORT
    + """
// the plan's options are made when the button is clicked, at the end of the body (a
// portal), with nothing tying them to the button but the click
const plan = document.getElementById('plan');
plan.addEventListener('click', () => {
  const old = document.getElementById('plan-options');
  if (old) { old.remove(); return; }
  const box = document.createElement('div');
  box.id = 'plan-options'; box.className = 'menu'; box.setAttribute('role', 'listbox');
  for (const name of ['Free', 'Team', 'Enterprise']) {
    const o = document.createElement('div');
    o.setAttribute('role', 'option'); o.textContent = name;
    o.addEventListener('click', () => {
      plan.textContent = 'Plan: ' + name; box.remove();
      report('/api/plan?name=' + name);
    });
    box.appendChild(o);
  }
  document.body.appendChild(box);
});
</script>"""
)

AUTOCOMPLETE = (
    """<h1>Travel</h1>
<label for="city">City</label>
<input id="city" role="combobox" aria-controls="cities" autocomplete="off">
<ul id="cities" role="listbox"></ul>
<label for="airport">Airport</label>
<input id="airport" autocomplete="off">
<ul id="airports"></ul>
<script>"""
    + REPORT
    + """
// a plain debounce: the suggestions are asked for 300 ms after the last keystroke
const city = document.getElementById('city');
let wait = 0;
city.addEventListener('input', () => {
  clearTimeout(wait);
  wait = setTimeout(async () => {
    const names = await (await fetch('/api/suggest?q=' + encodeURIComponent(city.value))).json();
    document.getElementById('cities').innerHTML =
      names.map((n) => `<li role="option">${n}</li>`).join('');
  }, 300);
});
// lodash's kind: a trailing timer that sets itself again until 300 ms have passed quietly
const airport = document.getElementById('airport');
let last = 0, timer = 0;
const expired = async () => {
  const left = 300 - (Date.now() - last);
  if (left > 0) { timer = setTimeout(expired, left); return; }
  timer = 0;
  const names = await (await fetch('/api/suggest?q=' + encodeURIComponent(airport.value))).json();
  document.getElementById('airports').innerHTML =
    names.map((n) => `<li>${n} airport</li>`).join('');
};
airport.addEventListener('input', () => {
  last = Date.now();
  if (!timer) timer = setTimeout(expired, 300);
});
</script>"""
)

STATIC: dict[str, tuple[str, str]] = {
    "/kanban": ("Board", KANBAN),
    "/sortable": ("Priorities", SORTABLE),
    "/canvas": ("Shop game", CANVAS),
    "/clickables": ("Dashboard", CLICKABLES),
    "/boxes": ("Support", BOXES),
    "/tall": ("Tall", TALL),
    "/grid": ("Records", GRID),
    "/opener": ("Shop", OPENER),
    "/oauth": ("Provider", OAUTH),
    "/crashy": ("Editor", CRASHY),
    "/forms": ("Booking", FORMS),
    "/long-text": ("Terms", LONG_TEXT),
    "/editor": ("Compose", EDITOR),
    "/dropdowns": ("Settings", DROPDOWNS),
    "/autocomplete": ("Travel", AUTOCOMPLETE),
    "/framed-board": (
        "Team",
        "<h1>Team</h1><iframe src='/kanban' title='Board' style='width:700px;height:400px'>"
        "</iframe>",
    ),
    "/landing": ("Landing", "<h1>Landing</h1>"),
    "/static": ("Static", "<h1>Static</h1><p>Nothing moves here.</p><input id='q'>"),
}

CITIES = ["Paris", "Parma", "Porto", "Berlin", "Madrid"]


class Site:
    """The server, what it received, and the events the held requests wait on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[str, dict[str, list[str]], str]] = []
        self.release_hold = threading.Event()
        self.close_signal = threading.Event()
        self.report_ready = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, path: str) -> list[dict[str, str]]:
        """The queries (first values) and body of the requests to ``path``, in order."""
        with self.lock:
            found = [(q, b) for p, q, b in self.log if p == path]
        return [{**{k: v[0] for k, v in q.items()}, **({"body": b} if b else {})} for q, b in found]

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
        self.release_hold.clear()
        self.close_signal.clear()
        self.report_ready.clear()

    def close(self) -> None:
        self.release_hold.set()
        self.close_signal.set()
        self.report_ready.set()
        self.server.shutdown()
        self.server.server_close()


def _answer(site: Site, path: str, query: dict[str, list[str]]) -> tuple[int, str, str]:
    if path in STATIC:
        title, body = STATIC[path]
        return 200, "text/html", page(title, body)
    if path == "/api/hold":  # held until the test releases it (or the server closes)
        site.release_hold.wait(30)
        return 200, "text/plain", "released"
    if path == "/api/close-signal":
        site.close_signal.wait(30)
        return 200, "text/plain", "close"
    if path == "/api/slow-report":
        site.report_ready.wait(30)
        return 200, "text/plain", "Revenue: 42"
    if path == "/api/username":
        free = query.get("u", [""])[0] != "taken"
        return 200, "application/json", json.dumps({"free": free})
    if path == "/api/suggest":
        time.sleep(0.1)
        q = query.get("q", [""])[0].lower()
        return 200, "application/json", json.dumps([c for c in CITIES if c.lower().startswith(q)])
    if path.startswith("/api/"):
        return 200, "text/plain", "ok"
    if path.startswith("/records/") or path == "/booked":
        return 200, "text/html", page("Record", f"<h1>{html.escape(path)}</h1>")
    return 404, "text/html", page("Not found", "<p>No such page.</p>")


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, body: str) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with site.lock:
                site.log.append((parts.path, query, body))
            status, kind, text = _answer(site, parts.path, query)
            data = text.encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the page went away (a popup that closed, a crash)

        def do_GET(self) -> None:
            self._serve("")

        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
            self._serve(self.rfile.read(length).decode("utf-8", "replace"))

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def start_site() -> Site:
    return Site()

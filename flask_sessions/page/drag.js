// Runs on an element of a drag (its source, its target) with a token for the drag. Mode
// "watch" puts capture listeners for the drag's events in the element's window (only
// recording, never changing the event) and returns the element's box in its window; mode
// "read" returns what they saw, as JSON, and takes them away (el null: the page's window).
// The events: HTML5 drag and drop (dragstart, drop) and pointer events (pointerdown,
// pointermove, pointerup).
(el, token) => {
  //@lib
  const MODE = "//@mode";
  const win = el ? el.ownerDocument.defaultView : window;
  const KEY = Symbol.for("flask_sessions.drag");
  const target = (e) => {
    const t = e.composedPath()[0];
    return t && t.nodeType === 1 ? describeEl(t) : null;
  };
  if (MODE === "watch") {
    const r = el.getBoundingClientRect();
    const box = { x: r.x, y: r.y, width: r.width, height: r.height };
    const old = win[KEY];
    if (old && old.token === token) return box;  // source and target share a window
    if (old) old.stop();
    const seen = { window: token + ":" + Math.random(), dragstart: null, drop: null,
                   down: null, up: null, moves: 0 };
    const on = {
      dragstart: (e) => { seen.dragstart = seen.dragstart || target(e); },
      drop: (e) => { seen.drop = target(e); },
      pointerdown: (e) => { seen.down = seen.down || target(e); },
      pointermove: () => { seen.moves += 1; },
      pointerup: (e) => { seen.up = target(e); },
    };
    const options = { capture: true, passive: true };
    for (const [type, fn] of Object.entries(on)) win.addEventListener(type, fn, options);
    const stop = () => {
      for (const [type, fn] of Object.entries(on)) win.removeEventListener(type, fn, options);
    };
    Object.defineProperty(win, KEY, { value: { token, seen, stop }, configurable: true,
                                       writable: true });
    return box;
  }
  const record = win[KEY];
  if (!record || record.token !== token) return JSON.stringify(null);
  record.stop();
  win[KEY] = null;
  return JSON.stringify(record.seen);
}

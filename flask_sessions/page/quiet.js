// Init script of every session's pages and frames: remembers when the DOM last changed, so a
// step can wait until the page is quiet, and when the page last opened a window (so a step
// can wait for the new tab). Parsing does not count (observing starts at DOMContentLoaded);
// open shadow roots are observed too; flask_sessions' own data-fs-* attributes are ignored.
// Read with window[Symbol.for("flask_sessions.quiet")]: {last, opened} (performance.now()).
// Also (issue 22): `listeners`, a WeakMap of the elements given click (1), drag (2) or drop (4)
// listeners (observe.js lists them); `pending`, the timers an input event started (a
// debounced search), which a step's settling waits for; and `keySnap`, the scroll positions a
// scrolling key may move (so a press_key that scrolled waits for the frames that follow).
// It also hides the text caret, once per document, with an adopted style sheet (no element
// in the DOM): the caret blinks, so two screenshots of a page with a focused input would
// differ by it, and Playwright's own page.screenshot() hides it too (caret: "hide").
(() => {
  const KEY = Symbol.for("flask_sessions.quiet");
  if (window[KEY]) return;
  const state = { last: -1e9, opened: -1e9, listeners: new WeakMap(), pending: new Map(),
                  keySnap: null, downPath: null };
  Object.defineProperty(window, KEY, { value: state });
  const ours = (r) => r.type === "attributes" && (r.attributeName || "").startsWith("data-fs-");
  const observer = new MutationObserver((records) => {
    if (!records.every(ours)) state.last = performance.now();
  });
  const options = { subtree: true, childList: true, attributes: true, characterData: true };
  const start = () => observer.observe(document, options);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start, { once: true });
  } else {
    start();
  }
  try {
    const caret = new CSSStyleSheet();
    caret.replaceSync("*, *::before, *::after { caret-color: transparent !important; }");
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, caret];
  } catch (e) { /* an old engine or a locked-down page: the caret may show */ }
  const open = window.open;
  window.open = function (...args) {
    state.opened = performance.now();
    return open.apply(this, args);
  };
  addEventListener("click", (e) => {  // a link into a new tab (after the page's handlers)
    if (e.defaultPrevented) return;
    const link = e.composedPath().find((n) => n.tagName === "A" && n.href);
    if (link && (link.target || "").toLowerCase() === "_blank") state.opened = performance.now();
  });
  // ---- perception II (issue 22)
  // listeners: the elements that take clicks, drags or drops (not window or document: that
  // is delegation, which says nothing of an element)
  const KINDS = { click: 1, mousedown: 1, mouseup: 1, pointerdown: 1, pointerup: 1,
                  touchstart: 1, dragstart: 2, drag: 2, dragenter: 4, dragover: 4, drop: 4 };
  const addListener = EventTarget.prototype.addEventListener;
  EventTarget.prototype.addEventListener = function (type, ...rest) {
    const bit = KINDS[type];
    if (bit && this && this.nodeType === 1) {
      state.listeners.set(this, (state.listeners.get(this) || 0) | bit);
    }
    return addListener.call(this, type, ...rest);
  };
  // timers an input event starts (a debounce), and those they start in turn (two deep)
  const INPUTS = new Set(["input", "beforeinput", "keydown", "keyup", "keypress", "change",
                          "paste", "cut", "compositionend"]);
  const setTimer = window.setTimeout;
  const clearTimer = window.clearTimeout;
  let depth = 0;  // >0 while a tracked timer's callback runs
  window.setTimeout = function (fn, delay, ...rest) {
    const ms = Number(delay) || 0;
    const ev = window.event;
    const track = typeof fn === "function" && ms <= 2000 &&
      ((depth > 0 && depth < 3) || (depth === 0 && ev && INPUTS.has(ev.type)));
    if (!track) return setTimer.call(window, fn, delay, ...rest);
    const level = depth + 1;
    let id = 0;
    const run = function (...args) {
      state.pending.delete(id);
      state.last = performance.now();  // what it does next (a fetch, a render) counts
      const outer = depth;
      depth = level;
      try { return fn.apply(this, args); } finally { depth = outer; }
    };
    id = setTimer.call(window, run, delay, ...rest);
    state.pending.set(id, performance.now() + ms);
    return id;
  };
  window.clearTimeout = function (id) {
    state.pending.delete(id);
    return clearTimer.call(window, id);
  };
  // a key that scrolls: where the boxes it may move were (the focused element's, the last
  // pressed one's, the page's)
  const SCROLL_KEYS = new Set(["PageDown", "PageUp", "ArrowDown", "ArrowUp", "ArrowLeft",
                               "ArrowRight", "Home", "End", " ", "Spacebar"]);
  const elements = (path) => path.filter((n) => n && n.nodeType === 1).slice(0, 40);
  addEventListener("pointerdown", (e) => { state.downPath = elements(e.composedPath()); }, true);
  addEventListener("keydown", (e) => {
    if (!SCROLL_KEYS.has(e.key)) { state.keySnap = null; return; }
    const boxes = new Set([document.scrollingElement, ...elements(e.composedPath()),
                           ...(state.downPath || [])]);
    state.keySnap = [...boxes].filter((el) => el && (el.scrollHeight > el.clientHeight ||
      el.scrollWidth > el.clientWidth)).map((el) => [el, el.scrollTop, el.scrollLeft]);
  }, true);
  const attachShadow = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attachShadow.call(this, init);
    try { observer.observe(root, options); } catch (e) { /* never break the page */ }
    return root;
  };
})();

// Init script of every session's pages and frames: remembers when the DOM last changed, so a
// step can wait until the page is quiet, and when the page last opened a window (so a step
// can wait for the new tab). Parsing does not count (observing starts at DOMContentLoaded);
// open shadow roots are observed too; flask_sessions' own data-fs-* attributes are ignored.
// Read with window[Symbol.for("flask_sessions.quiet")]: {last, opened} (performance.now()).
// It also hides the text caret, once per document, with an adopted style sheet (no element
// in the DOM): the caret blinks, so two screenshots of a page with a focused input would
// differ by it, and Playwright's own page.screenshot() hides it too (caret: "hide").
(() => {
  const KEY = Symbol.for("flask_sessions.quiet");
  if (window[KEY]) return;
  const state = { last: -1e9, opened: -1e9 };
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
  const attachShadow = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attachShadow.call(this, init);
    try { observer.observe(root, options); } catch (e) { /* never break the page */ }
    return root;
  };
})();

// Runs on one element whose click Playwright saw intercepted: scrolls it into view and
// says what takes a click at its centre (an overlay, a banner).
// Returns {covered: false} or {covered: true, by: "<div id=…> \"text\"", ids: ["B1", …]}.
(el) => {
  //@lib
  if (el.scrollIntoViewIfNeeded) el.scrollIntoViewIfNeeded(true);
  else el.scrollIntoView({ block: "center", inline: "center" });
  const win = el.ownerDocument.defaultView;
  const r = el.getBoundingClientRect();
  const left = Math.max(r.left, 0);
  const top = Math.max(r.top, 0);
  const right = Math.min(r.right, win.innerWidth);
  const bottom = Math.min(r.bottom, win.innerHeight);
  if (right <= left || bottom <= top) return { covered: false };
  const result = hitTest(el, { left, top, width: right - left, height: bottom - top });
  if (!result.covered) return { covered: false };
  const ids = Array.from(result.by.querySelectorAll("[data-fs-id]"))
    .map((e) => e.getAttribute("data-fs-id")).slice(0, 5);
  return { covered: true, by: describeEl(result.by), ids };
}

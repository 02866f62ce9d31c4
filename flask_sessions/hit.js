// Runs on one element before a click, hover or check: scrolls it into view and says whether
// something else (an overlay, a banner) would take the click at its centre.
// Returns {covered, by: "<div id=…> \"text\"", ids: ["B1", …], newTab}: newTab says a click
// opens a new tab (a link or form with a target other than _self, _parent, _top).
(el) => {
  //@lib
  const owner = el.closest("a[href], area[href]") || (el.form || null);
  const target = owner ? (owner.getAttribute("target") || "").toLowerCase() : "";
  const newTab = target === "_blank" || (!!target && !["_self", "_parent", "_top"]
    .includes(target) && !el.ownerDocument.defaultView.top.frames[target]);
  if (el.scrollIntoViewIfNeeded) el.scrollIntoViewIfNeeded(true);
  else el.scrollIntoView({ block: "center", inline: "center" });
  const win = el.ownerDocument.defaultView;
  const r = el.getBoundingClientRect();
  const left = Math.max(r.left, 0);
  const top = Math.max(r.top, 0);
  const right = Math.min(r.right, win.innerWidth);
  const bottom = Math.min(r.bottom, win.innerHeight);
  if (right <= left || bottom <= top) return { covered: false, newTab };
  const result = hitTest(el, { left, top, width: right - left, height: bottom - top });
  if (!result.covered) return { covered: false, newTab };
  const ids = Array.from(result.by.querySelectorAll("[data-fs-id]"))
    .map((e) => e.getAttribute("data-fs-id")).slice(0, 5);
  return { covered: true, by: describeEl(result.by), ids, newTab };
}

// Scrolls the page, or the nearest scrollable box around an element, by `dy` px (null: one
// screen of it) and says how far it really moved. Runs with the element (`el`, or null for
// the page). A page that cannot scroll itself (an app shell whose body does not move) has
// its largest visible scroll box scrolled instead.
// Returns {moved, at, max, step, box (the box described, null: the page), id (its data-fs-id)}.
(el, args) => {
  //@lib
  const { down, amount } = args;
  const SCROLLS = /auto|scroll|overlay/;
  const canScroll = (n) => {
    const s = getComputedStyle(n);
    return SCROLLS.test(s.overflowY) && n.scrollHeight > n.clientHeight + 1;
  };
  const doc = el ? el.ownerDocument : document;
  const page = doc.scrollingElement || doc.documentElement;
  let box = null;
  for (let n = el; n && n.nodeType === 1; n = composedParent(n)) {
    if (n === doc.body || n === doc.documentElement) break;
    if (canScroll(n)) { box = n; break; }
  }
  if (!box && !el && page.scrollHeight <= page.clientHeight + 1) {
    let best = 0;
    for (const n of doc.querySelectorAll("body *")) {
      if (n.scrollHeight <= n.clientHeight + 1 || !canScroll(n)) continue;
      const r = n.getBoundingClientRect();
      const area = Math.max(0, Math.min(r.right, innerWidth) - Math.max(r.left, 0)) *
        Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
      if (area > best) { best = area; box = n; }
    }
  }
  const scroller = box || page;
  const view = box ? box.clientHeight : doc.defaultView.innerHeight;
  const step = amount || view;
  const before = scroller.scrollTop;
  scroller.scrollBy({ top: down ? step : -step, behavior: "instant" });
  const at = scroller.scrollTop;
  return {
    moved: Math.round(Math.abs(at - before)), at: Math.round(at),
    max: Math.round(Math.max(0, scroller.scrollHeight - scroller.clientHeight)), step,
    box: box ? describeEl(box).slice(0, 120) : null,
    id: box ? box.getAttribute("data-fs-id") : null,
  };
}

// Helpers shared by observe.js and hit.js; page_ops pastes this file where those say //@lib.
// Plain declarations only: each script runs as one function in the page.
const clean = (s) => (s || "").replace(/\s+/g, " ").trim();
// The parent in the composed tree: through a shadow root to its host.
const composedParent = (node) => {
  if (node.parentElement) return node.parentElement;
  const parent = node.parentNode;
  return parent && parent.host ? parent.host : null;
};
const composedContains = (outer, inner) => {
  for (let n = inner; n; n = composedParent(n)) if (n === outer) return true;
  return false;
};
// elementFromPoint stops at a shadow host; go down through open shadow roots.
const deepHit = (doc, x, y) => {
  let hit = doc.elementFromPoint(x, y);
  while (hit && hit.shadowRoot) {
    const inner = hit.shadowRoot.elementFromPoint(x, y);
    if (!inner || inner === hit) break;
    hit = inner;
  }
  return hit;
};
const describeEl = (el) => {
  let s = "<" + el.tagName.toLowerCase();
  if (el.id) s += ` id="${el.id}"`;
  else if (el.classList && el.classList.length) {
    s += ` class="${Array.from(el.classList).slice(0, 3).join(" ")}"`;
  }
  const role = el.getAttribute("role");
  if (role) s += ` role="${role}"`;
  const label = el.getAttribute("aria-label");
  if (label) s += ` aria-label="${clean(label).slice(0, 60)}"`;
  s += ">";
  const text = clean(el.innerText);
  if (text) s += ` "${text.length > 80 ? text.slice(0, 80) + "…" : text}"`;
  return s;
};
// Does a click at the centre of `box` (in el's window coordinates) reach `el`?
// Returns {covered: false} or {covered: true, by: the outermost element over it}.
const hitTest = (el, box) => {
  const doc = el.ownerDocument;
  const x = box.left + box.width / 2;
  const y = box.top + box.height / 2;
  const hit = deepHit(doc, x, y);
  if (!hit || composedContains(el, hit)) return { covered: false };
  for (let n = hit; n; n = composedParent(n)) {
    if (n.tagName === "LABEL" && n.control === el) return { covered: false };  // clicks reach el
  }
  // An ancestor answers (pointer-events: none, or a scroll box clips el): not an overlay.
  if (composedContains(hit, el)) return { covered: false };
  let cover = hit;
  for (let n = composedParent(hit); n && n !== doc.body && n !== doc.documentElement &&
       !composedContains(n, el); n = composedParent(n)) cover = n;
  return { covered: true, by: cover };
};

// Runs on the target of select_dropdown_option (a combobox, a button that opens a list) with
// [token, mode]; finds the list of options that belongs to it and tags it
// data-fs-listbox=<token>, so the step looks for options there and nowhere else.
// - "controlled": the listbox it names (aria-controls, aria-owns), or one labelled by it.
// - "mark": before opening it, mark the options showing now (data-fs-seen=<token>).
// - "opened": the options showing now that were not marked: their listbox (or parent), the
//   one nearest after the target (a portal at the end of the body counts).
// - "clear": take the marks away.
// Returns whether a list was tagged (mark and clear: the number of options showing).
(el, [token, mode]) => {
  const root = el.getRootNode();
  const doc = el.ownerDocument;
  const shown = (n) => (n.checkVisibility ? n.checkVisibility() : n.getClientRects().length > 0);
  const tag = (n) => { n.setAttribute("data-fs-listbox", token); return true; };
  const options = () => Array.from(doc.querySelectorAll("[role=option]")).filter(shown);
  if (mode === "controlled") {
    const ids = ((el.getAttribute("aria-controls") || "") + " " +
                 (el.getAttribute("aria-owns") || "")).split(/\s+/).filter(Boolean);
    for (const id of ids) {
      const n = (root.getElementById ? root.getElementById(id) : null) || doc.getElementById(id);
      if (!n) continue;
      const inner = n.getAttribute("role") === "listbox" ? n : n.querySelector("[role=listbox]");
      return tag(inner || n);
    }
    if (el.id) {
      for (const n of doc.querySelectorAll("[role=listbox][aria-labelledby]")) {
        if (n.getAttribute("aria-labelledby").split(/\s+/).includes(el.id)) return tag(n);
      }
    }
    return false;
  }
  if (mode === "mark") {
    const now = options();
    for (const o of now) o.setAttribute("data-fs-seen", token);
    return now.length;
  }
  if (mode === "clear") {
    for (const o of doc.querySelectorAll("[data-fs-seen]")) o.removeAttribute("data-fs-seen");
    return 0;
  }
  const fresh = options().filter((o) => o.getAttribute("data-fs-seen") !== token);
  if (!fresh.length) return false;
  const lists = [];
  for (const o of fresh) {
    const list = o.closest("[role=listbox]") || o.parentElement;
    if (list && !lists.includes(list)) lists.push(list);
  }
  const after = lists.find((l) => el.compareDocumentPosition(l) & Node.DOCUMENT_POSITION_FOLLOWING);
  return tag(after || lists[lists.length - 1]);
}

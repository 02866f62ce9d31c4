// Runs on the target of a fill or type step, with a mode:
// - "readonly": null if it can be typed into; else why not, and the widget that sets it
//   ({why, role, popup, near: [[id, name]…]}: its popup, or the listed controls beside it).
// - "focus": give it the focus (unless it or something in it has it already) with the caret
//   at the end of its text, as a click after the text would; returns whether it had it.
(el, mode) => {
  //@lib
  if (mode === "focus") {
    let active = el.ownerDocument.activeElement;
    while (active && active.shadowRoot && active.shadowRoot.activeElement) {
      active = active.shadowRoot.activeElement;
    }
    if (active && composedContains(el, active)) return true;
    el.focus();
    if (typeof el.setSelectionRange === "function" && typeof el.value === "string") {
      try { el.setSelectionRange(el.value.length, el.value.length); } catch (e) { /* email… */ }
    } else if (el.isContentEditable) {
      const range = el.ownerDocument.createRange();
      range.selectNodeContents(el);
      range.collapse(false);
      const selection = el.ownerDocument.defaultView.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    return false;
  }
  const why = el.readOnly === true ? "readonly"
    : el.getAttribute("aria-readonly") === "true" ? 'aria-readonly="true"' : null;
  if (!why) return null;
  const popup = (el.getAttribute("aria-haspopup") || "").toLowerCase();
  const near = [];
  let box = el.parentElement;
  for (let depth = 0; box && depth < 3 && !near.length; depth++, box = box.parentElement) {
    for (const n of box.querySelectorAll("[data-fs-id]")) {
      if (n === el || n.contains(el) || near.length >= 3) continue;
      const name = clean(n.getAttribute("aria-label") || n.innerText || n.getAttribute("title") ||
                         n.getAttribute("placeholder") || "").slice(0, 60);
      near.push([n.getAttribute("data-fs-id"), name]);
    }
  }
  return { why, role: el.getAttribute("role") || "", popup: popup === "false" ? "" : popup,
           list: !!el.getAttribute("list"), near };
}

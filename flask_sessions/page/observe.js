// Runs in the page: lists the visible interactive elements and the visible text.
// Returns {actions: [{id, role, name, value, enabled, selector, tag}], text, truncated}.
// Each listed element is tagged data-fs-id="<id>" so a step can find it again.
(args) => {
  const { maxActions, maxText } = args;
  const SELECTOR = [
    "a[href]", "button", "input", "textarea", "select", "summary", "[onclick]",
    "[contenteditable='true']", "[contenteditable='']", "[tabindex]:not([tabindex='-1'])",
    "[role=button]", "[role=link]", "[role=checkbox]", "[role=radio]", "[role=switch]",
    "[role=tab]", "[role=menuitem]", "[role=menuitemcheckbox]", "[role=menuitemradio]",
    "[role=option]", "[role=combobox]", "[role=listbox]", "[role=textbox]",
    "[role=searchbox]", "[role=slider]", "[role=spinbutton]", "[role=treeitem]",
  ].join(",");
  const PREFIX = { link: "L", button: "B", textbox: "I", searchbox: "I", checkbox: "C",
                   radio: "C", switch: "C", combobox: "S", listbox: "S" };

  const clean = (s) => (s || "").replace(/\s+/g, " ").trim();
  const visible = (el) => {
    const rect = el.getBoundingClientRect();
    if (rect.width <= 0 || rect.height <= 0) return false;
    const style = getComputedStyle(el);
    return style.visibility !== "hidden" && style.display !== "none" && style.opacity !== "0";
  };
  const roleOf = (el) => {
    const explicit = (el.getAttribute("role") || "").trim().split(/\s+/)[0];
    if (explicit) return explicit;
    const tag = el.tagName.toLowerCase();
    if (tag === "a") return "link";
    if (tag === "button" || tag === "summary") return "button";
    if (tag === "select") return el.multiple || el.size > 1 ? "listbox" : "combobox";
    if (tag === "textarea") return "textbox";
    if (tag === "input") {
      const type = (el.getAttribute("type") || "text").toLowerCase();
      if (["button", "submit", "reset", "image"].includes(type)) return "button";
      if (type === "checkbox") return "checkbox";
      if (type === "radio") return "radio";
      if (type === "range") return "slider";
      if (type === "number") return "spinbutton";
      if (type === "search") return "searchbox";
      return "textbox";
    }
    if (el.isContentEditable) return "textbox";
    return "button";  // a click handler or tabindex on a plain element
  };
  const labelText = (el) => {
    const by = el.getAttribute("aria-labelledby");
    if (by) {
      const text = by.split(/\s+/).map((id) => document.getElementById(id))
        .filter(Boolean).map((e) => e.innerText).join(" ");
      if (clean(text)) return text;
    }
    if (el.labels && el.labels.length) return Array.from(el.labels).map((l) => l.innerText).join(" ");
    return "";
  };
  const nameOf = (el, role) => {
    const tag = el.tagName.toLowerCase();
    const candidates = [el.getAttribute("aria-label"), labelText(el)];
    if (tag === "input" || tag === "textarea" || tag === "select") {
      if (["button", "submit", "reset"].includes((el.type || "").toLowerCase())) {
        candidates.push(el.value);
      }
      candidates.push(el.getAttribute("placeholder"), el.getAttribute("title"),
                      el.getAttribute("alt"), el.getAttribute("name"), el.id);
    } else {
      candidates.push(el.innerText, el.getAttribute("title"), el.getAttribute("alt"));
      const img = el.querySelector && el.querySelector("img[alt]");
      if (img) candidates.push(img.getAttribute("alt"));
    }
    for (const c of candidates) if (clean(c)) return clean(c).slice(0, 200);
    return role;
  };
  const valueOf = (el, role) => {
    const tag = el.tagName.toLowerCase();
    if (role === "checkbox" || role === "radio" || role === "switch") {
      const on = tag === "input" ? el.checked : el.getAttribute("aria-checked") === "true";
      return on ? "checked" : "unchecked";
    }
    if (tag === "select") {
      return Array.from(el.selectedOptions).map((o) => clean(o.label || o.text)).join(", ");
    }
    if (tag === "input" || tag === "textarea") {
      if ((el.type || "").toLowerCase() === "password") return el.value ? "••••" : "";
      if (["button", "submit", "reset", "image"].includes((el.type || "").toLowerCase())) return null;
      return el.value;
    }
    if (el.isContentEditable) return clean(el.innerText).slice(0, 200);
    return null;
  };
  const cssPath = (el) => {
    if (el.id && document.querySelectorAll("#" + CSS.escape(el.id)).length === 1) {
      return "#" + CSS.escape(el.id);
    }
    const parts = [];
    let node = el;
    while (node && node.nodeType === 1 && node !== document.documentElement) {
      let part = node.tagName.toLowerCase();
      if (node.id && document.querySelectorAll("#" + CSS.escape(node.id)).length === 1) {
        parts.unshift("#" + CSS.escape(node.id));
        break;
      }
      const parent = node.parentElement;
      if (parent) {
        const same = Array.from(parent.children).filter((c) => c.tagName === node.tagName);
        if (same.length > 1) part += `:nth-of-type(${same.indexOf(node) + 1})`;
      }
      parts.unshift(part);
      node = parent;
    }
    return parts.join(" > ");
  };

  document.querySelectorAll("[data-fs-id]").forEach((el) => el.removeAttribute("data-fs-id"));
  const counters = {};
  const actions = [];
  const seen = new Set();
  let cut = false;
  for (const el of document.querySelectorAll(SELECTOR)) {
    if (seen.has(el)) continue;
    seen.add(el);
    if (el.tagName.toLowerCase() === "input" && (el.type || "").toLowerCase() === "hidden") continue;
    if (!visible(el)) continue;
    // a control inside a listed link/button is part of it, not a separate action
    const outer = el.parentElement && el.parentElement.closest("a[href],button,[role=button],[role=link]");
    if (outer && seen.has(outer) && !["input", "select", "textarea"].includes(el.tagName.toLowerCase())) continue;
    if (actions.length >= maxActions) { cut = true; break; }
    const role = roleOf(el);
    const prefix = PREFIX[role] || "B";
    counters[prefix] = (counters[prefix] || 0) + 1;
    const id = prefix + counters[prefix];
    el.setAttribute("data-fs-id", id);
    const disabled = el.disabled === true || el.getAttribute("aria-disabled") === "true" ||
      (el.closest("fieldset[disabled]") !== null);
    actions.push({ id, role, name: nameOf(el, role), value: valueOf(el, role),
                   enabled: !disabled, selector: cssPath(el), tag: el.tagName.toLowerCase() });
  }
  const raw = document.body ? document.body.innerText || "" : "";
  const text = raw.replace(/[ \t\u00a0]+/g, " ").replace(/ *\n */g, "\n")
    .replace(/\n{3,}/g, "\n\n").trim();
  return { actions, text: text.slice(0, maxText).trimEnd(), text_length: text.length,
           truncated: text.length > maxText || cut };
}

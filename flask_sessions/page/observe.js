// Runs in a page (or a cross-origin frame): lists the visible interactive elements and the
// visible text, through open shadow roots and same-origin iframes.
//
// Ids count every visible interactive element in document order (L1, L2, … per kind), so
// an element keeps its id whatever is listed. The listing puts elements in and near the
// viewport first, then the rest in document order, then skips `offset` and keeps `limit`.
// Listed elements are tagged data-fs-id="<id>", iframes data-fs-frame="<frame id>", so a
// step can find them again. Coordinates: `origin` is where this window's (0, 0) sits in the
// top page, `clip` the part of the top viewport this window shows (both null at the top).
//
// Returns {actions, total, counters, frameCount, frames, text, textLength, navStatus,
// sinceDom (ms since the DOM last changed, see quiet.js), viewport (scroll and page size)}.
(args) => {
  //@lib
  const { limit, offset, find, maxText } = args;
  const counters = Object.assign({}, args.counters || {});
  let frameCount = args.frameCount || 0;
  const SELECTOR = [
    "a[href]", "button", "input", "textarea", "select", "summary", "[onclick]",
    "[contenteditable='true']", "[contenteditable='']", "[tabindex]:not([tabindex='-1'])",
    "[role=button]", "[role=link]", "[role=checkbox]", "[role=radio]", "[role=switch]",
    "[role=tab]", "[role=menuitem]", "[role=menuitemcheckbox]", "[role=menuitemradio]",
    "[role=option]", "[role=combobox]", "[role=listbox]", "[role=textbox]",
    "[role=searchbox]", "[role=slider]", "[role=spinbutton]", "[role=treeitem]",
  ].join(",");
  const PREFIX = { link: "L", button: "B", textbox: "I", searchbox: "I", spinbutton: "I",
                   checkbox: "C", radio: "C", switch: "C", combobox: "S", listbox: "S" };
  const FORM = ["input", "select", "textarea"];
  const top = args.origin || { x: 0, y: 0 };
  const topView = args.clip || { left: 0, top: 0, right: innerWidth, bottom: innerHeight };
  const viewH = args.viewH || innerHeight;
  const viewW = args.viewW || innerWidth;

  const isShadow = (node) => !!node && node.nodeType === 11 && !!node.host;
  const intersects = (r, c) => r.right > c.left && r.left < c.right && r.bottom > c.top &&
    r.top < c.bottom;
  const visibleBox = (el) => {
    const rect = el.getBoundingClientRect();
    if (rect.width <= 0 || rect.height <= 0) return null;
    if (el.checkVisibility) {
      if (!el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) return null;
    } else {
      const style = el.ownerDocument.defaultView.getComputedStyle(el);
      if (style.visibility === "hidden" || style.display === "none" || style.opacity === "0") {
        return null;
      }
    }
    return rect;
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

  // ---- text through shadow roots (innerText stops at a shadow host)
  const hostAncestors = new Set();
  const markHost = (host) => {
    for (let n = composedParent(host); n && !hostAncestors.has(n); n = composedParent(n)) {
      hostAncestors.add(n);
    }
  };
  const SKIP = new Set(["SCRIPT", "STYLE", "TEMPLATE", "NOSCRIPT"]);
  const nodeText = (node) => {
    if (node.nodeType === 3) return node.data.replace(/\s+/g, " ");
    if (node.nodeType !== 1 || SKIP.has(node.tagName)) return "";
    if (node.tagName === "SLOT") {
      return node.assignedNodes({ flatten: true }).map(nodeText).join("");
    }
    const style = node.ownerDocument.defaultView.getComputedStyle(node);
    if (style.display === "none" || style.visibility === "hidden") return "";
    const text = deepText(node);
    return style.display.startsWith("inline") ? text : "\n" + text + "\n";
  };
  // innerText, except that shadow content and slotted text are included.
  const deepText = (el) => {
    const inner = el.shadowRoot || hostAncestors.has(el) || el.tagName === "SLOT" ||
      (isShadow(el.getRootNode()) && el.querySelector("slot"));
    if (!inner) return el.innerText || "";
    const kids = el.shadowRoot ? el.shadowRoot.childNodes : el.childNodes;
    return Array.from(kids).map(nodeText).join("");
  };
  const tidy = (raw) => raw.replace(/[ \t\u00a0]+/g, " ").replace(/ *\n */g, "\n")
    .replace(/\n{3,}/g, "\n\n").trim();

  // ---- names
  const idsText = (el, attr) => {
    const ids = (el.getAttribute(attr) || "").split(/\s+/).filter(Boolean);
    if (!ids.length) return "";
    const root = el.getRootNode();
    return ids.map((id) => root.getElementById ? root.getElementById(id) : null)
      .filter(Boolean).map((e) => clean(deepText(e)) || clean(e.textContent)).join(" ");
  };
  const labelText = (el) => {
    if (!el.labels || !el.labels.length) return "";
    return Array.from(el.labels).map((label) => {
      let t = label.innerText || "";
      if (label.contains(el) && el.innerText) t = t.replace(el.innerText, "");
      return t;
    }).join(" ");
  };
  const nameOf = (el, role) => {
    const tag = el.tagName.toLowerCase();
    const candidates = [idsText(el, "aria-labelledby"), el.getAttribute("aria-label"),
                        labelText(el)];
    if (FORM.includes(tag)) {
      if (["button", "submit", "reset"].includes((el.type || "").toLowerCase())) {
        candidates.push(el.value);
      }
      candidates.push(el.getAttribute("placeholder"), el.getAttribute("aria-placeholder"),
                      el.getAttribute("title"), el.getAttribute("alt"),
                      el.getAttribute("name"), el.id);
    } else {
      candidates.push(deepText(el), el.getAttribute("title"), el.getAttribute("alt"));
      const img = el.querySelector && el.querySelector("img[alt], svg[aria-label], svg title");
      if (img) candidates.push(img.getAttribute("alt") || img.getAttribute("aria-label") ||
                               img.textContent);
    }
    for (const c of candidates) if (clean(c)) return clean(c).slice(0, 200);
    const type = (el.type || "").toLowerCase();
    if (tag === "input" && (type === "submit" || type === "reset")) {
      return type === "submit" ? "Submit" : "Reset";  // the browser's own label
    }
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
    if (role === "combobox") return clean(el.getAttribute("aria-valuetext") || deepText(el)).slice(0, 200);
    if (role === "listbox") {
      return Array.from(el.querySelectorAll("[role=option][aria-selected=true]"))
        .map((o) => clean(deepText(o))).join(", ").slice(0, 200);
    }
    return null;
  };

  // ---- selectors: a CSS path within the element's own root; through shadow roots with >>
  const siblingIndex = new Map();
  const nthOfType = (node) => {
    const parent = node.parentNode;
    if (!parent) return 0;
    let table = siblingIndex.get(parent);
    if (!table) {
      table = new Map();
      const seen = {};
      for (const child of parent.children) {
        seen[child.tagName] = (seen[child.tagName] || 0) + 1;
        table.set(child, seen[child.tagName]);
      }
      table.set("counts", seen);
      siblingIndex.set(parent, table);
    }
    return table.get("counts")[node.tagName] > 1 ? table.get(node) : 0;
  };
  const uniqueId = (root, el) => el.id &&
    root.querySelectorAll("#" + CSS.escape(el.id)).length === 1;
  const cssPath = (el) => {
    const root = el.getRootNode();
    const parts = [];
    let node = el;
    while (node && node.nodeType === 1 && node !== node.ownerDocument.documentElement) {
      if (uniqueId(root, node)) { parts.unshift("#" + CSS.escape(node.id)); break; }
      let part = node.tagName.toLowerCase();
      const nth = nthOfType(node);
      if (nth) part += `:nth-of-type(${nth})`;
      parts.unshift(part);
      node = node.parentElement;
    }
    const path = parts.join(" > ");
    return isShadow(root) ? cssPath(root.host) + " >> " + path : path;
  };

  // ---- the walk: every root (document, shadow roots, same-origin frames) in document order
  const candidates = [];
  const frames = [];
  const texts = [];
  const matchedAll = new Set();
  const walkRoot = (root, ctx) => {
    root.querySelectorAll("[data-fs-id]").forEach((el) => el.removeAttribute("data-fs-id"));
    root.querySelectorAll("[data-fs-frame]").forEach((el) => el.removeAttribute("data-fs-frame"));
    const matched = new Set(root.querySelectorAll(SELECTOR));
    for (const el of matched) matchedAll.add(el);
    for (const el of root.querySelectorAll("*")) {
      if (matched.has(el)) consider(el, ctx);
      if (el.shadowRoot) { markHost(el); walkRoot(el.shadowRoot, ctx); }
      if (el.tagName === "IFRAME" || el.tagName === "FRAME") enterFrame(el, ctx);
    }
  };
  const consider = (el, ctx) => {
    const tag = el.tagName.toLowerCase();
    if (tag === "input" && (el.type || "").toLowerCase() === "hidden") return;
    // a control inside a listed link/button is part of it, not a separate action
    const parent = composedParent(el);
    const outer = parent && parent.closest && parent.closest("a[href],button,[role=button],[role=link]");
    if (outer && matchedAll.has(outer) && !FORM.includes(tag)) return;
    const rect = visibleBox(el);
    if (!rect) return;
    const box = { left: rect.left + ctx.x, top: rect.top + ctx.y,
                  right: rect.right + ctx.x, bottom: rect.bottom + ctx.y };
    const near = { left: ctx.clip.left - viewW, right: ctx.clip.right + viewW,
                   top: ctx.clip.top - viewH, bottom: ctx.clip.bottom + viewH };
    const role = roleOf(el);
    const prefix = PREFIX[role] || "B";
    counters[prefix] = (counters[prefix] || 0) + 1;
    candidates.push({ el, ctx, rect, role, id: prefix + counters[prefix],
                      inView: intersects(box, ctx.clip), near: intersects(box, near) });
  };
  const enterFrame = (el, ctx) => {
    const rect = visibleBox(el);
    if (!rect) return;
    frameCount += 1;
    const id = "F" + frameCount;
    el.setAttribute("data-fs-frame", id);
    const x = ctx.x + rect.left + el.clientLeft;
    const y = ctx.y + rect.top + el.clientTop;
    const own = { left: x, top: y, right: x + el.clientWidth, bottom: y + el.clientHeight };
    const clip = { left: Math.max(own.left, ctx.clip.left), top: Math.max(own.top, ctx.clip.top),
                   right: Math.min(own.right, ctx.clip.right),
                   bottom: Math.min(own.bottom, ctx.clip.bottom) };
    let doc = null;
    try { doc = el.contentDocument; } catch (e) { doc = null; }
    const info = { id, parent: ctx.frame, name: clean(el.getAttribute("title") || el.name || ""),
                   url: el.src || "about:blank", cross_origin: !doc, origin: { x, y }, clip };
    frames.push(info);
    if (!doc || !doc.documentElement) return;
    try { info.url = doc.defaultView.location.href; } catch (e) { /* keep src */ }
    const child = { frame: id, doc, x, y, clip };
    walkRoot(doc, child);
    if (doc.body) texts.push({ frame: id, url: info.url, body: doc.body });
  };

  const main = { frame: args.frame || null, doc: document, x: top.x, y: top.y, clip: topView };
  walkRoot(document, main);

  // ---- choose and describe
  let pool = candidates;
  const names = new Map();
  if (find) {
    const needle = find.toLowerCase();
    pool = pool.filter((c) => {
      const name = nameOf(c.el, c.role);
      names.set(c, name);
      return name.toLowerCase().includes(needle);
    });
  }
  const ordered = pool.filter((c) => c.near).concat(pool.filter((c) => !c.near));
  const listed = ordered.slice(offset, offset + limit);
  const actions = listed.map((c) => {
    const el = c.el;
    let covered = { covered: false };
    if (c.inView) {
      const box = { left: Math.max(c.rect.left, c.ctx.clip.left - c.ctx.x),
                    top: Math.max(c.rect.top, c.ctx.clip.top - c.ctx.y) };
      box.width = Math.min(c.rect.right, c.ctx.clip.right - c.ctx.x) - box.left;
      box.height = Math.min(c.rect.bottom, c.ctx.clip.bottom - c.ctx.y) - box.top;
      covered = hitTest(el, box);
    }
    const disabled = el.disabled === true || el.getAttribute("aria-disabled") === "true" ||
      (el.matches && el.matches(":disabled"));
    return { c, covered, action: {
      id: c.id, role: c.role, name: names.get(c) || nameOf(el, c.role), value: valueOf(el, c.role),
      enabled: !disabled, selector: cssPath(el), frame: c.ctx.frame, in_viewport: c.inView,
      covered: covered.covered, covered_by: covered.covered ? describeEl(covered.by) : null,
    } };
  });
  for (const { c } of actions) c.el.setAttribute("data-fs-id", c.id);
  for (const { covered, action } of actions) {
    if (!covered.covered) continue;
    const inside = actions.filter((a) => composedContains(covered.by, a.c.el))
      .map((a) => a.action.id).slice(0, 5);
    if (inside.length) action.covered_by += ` (actions inside it: ${inside.join(", ")})`;
  }

  // ---- text: the page, then each same-origin frame, within maxText
  let text = tidy(document.body ? deepText(document.body) : "");
  for (const t of texts) {
    const body = tidy(deepText(t.body));
    if (body) text += `\n\n[frame ${t.frame}: ${t.url}]\n` + body;
  }
  return {
    actions: actions.map((a) => a.action), total: ordered.length, counters, frameCount,
    frames, text: text.slice(0, maxText).trimEnd(), textLength: text.length,
    navStatus: (performance.getEntriesByType("navigation")[0] || {}).responseStatus || null,
    sinceDom: performance.now() - (window[Symbol.for("flask_sessions.quiet")] || { last: -1e9 }).last,
    // the Notte routes' viewport (issue 21): where the window is scrolled, and the page's size
    viewport: { scroll_x: Math.round(scrollX), scroll_y: Math.round(scrollY), width: innerWidth,
      height: innerHeight, page_width: document.documentElement.scrollWidth,
      page_height: document.documentElement.scrollHeight },
  };
}

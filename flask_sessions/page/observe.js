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
// Besides the elements a selector finds (links, buttons, form fields, ARIA widgets), it lists
// (issue 22) scroll boxes ("scrollable"), large canvases ("canvas"), drag sources
// ("draggable") and drop targets ("dropzone"), and elements only a click listener or
// `cursor: pointer` marks ("clickable"). What no selector finds comes from the style sheets'
// rules (cursor, overflow: read once per sheet), inline styles, quiet.js's record of
// listeners, and React's and Vue's props on the element. A document with a style sheet it
// cannot read (cross-origin) has every element's computed style looked at instead.
//
// Returns {actions, total, counters, frameCount, frames, text (from args.textOffset, at most
// maxText), textLength, navStatus, sinceDom (ms since the DOM last changed, see quiet.js),
// busy (the visible element with aria-busy, described, or null), viewport (scroll and page
// size)}.
(args) => {
  //@lib
  const { limit, offset, find, maxText } = args;
  const textOffset = args.textOffset || 0;
  const geometry = args.geometry !== false;  // box and scroll_container (off: to measure them)
  const QUIET = Symbol.for("flask_sessions.quiet");
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
                   checkbox: "C", radio: "C", switch: "C", combobox: "S", listbox: "S",
                   scrollable: "R", canvas: "G", draggable: "D", dropzone: "Z",
                   clickable: "B" };
  // what no selector finds: drag and drop by attribute, canvases, inline cursor/overflow
  const EXTRA = "canvas, [draggable='true'], [aria-grabbed], [dropzone], [aria-dropeffect]," +
    " [style*='cursor'], [style*='overflow']";
  const STATE_PSEUDO = /:(hover|focus|focus-visible|focus-within|active)\b/g;
  const SCROLLS = /auto|scroll|overlay/;
  const CLICK = 1, DRAG = 2, DROP = 4;  // quiet.js's listener bits
  const MIN_CANVAS = 10000;  // px²: a canvas at least this large is listed
  const userInvalid = (() => {
    try { document.createElement("input").matches(":user-invalid"); return ":user-invalid"; }
    catch (e) { return null; }
  })();
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
      if (type === "file") return "button";  // it opens a file chooser (upload_file, issue 19)
      if (type === "search") return "searchbox";
      return "textbox";
    }
    if (el.isContentEditable) return "textbox";
    return "button";  // a click handler or tabindex on a plain element
  };
  // a plain element matched only for its tabindex that scrolls is a scroll box, not a button
  const plain = (el) => !el.getAttribute("role") && !el.hasAttribute("onclick") &&
    !["a", "button", "summary", "input", "select", "textarea"].includes(el.tagName.toLowerCase())
    && !el.isContentEditable;

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
  // scroll boxes, canvases, drop zones: their label, title or heading, not all their text
  const CONTAINERS = new Set(["scrollable", "canvas", "dropzone"]);
  const containerName = (el, role) => {
    const heading = el.querySelector && el.querySelector("h1,h2,h3,h4,h5,h6,[role=heading]");
    const candidates = [idsText(el, "aria-labelledby"), el.getAttribute("aria-label"),
                        el.getAttribute("title"), heading ? deepText(heading) : "",
                        role === "canvas" ? el.textContent : clean(el.textContent).slice(0, 80)];
    for (const c of candidates) if (clean(c)) return clean(c).slice(0, 200);
    return el.id ? `${role} #${el.id}` : role;
  };
  const readonlyOf = (el) => el.readOnly === true || el.getAttribute("aria-readonly") === "true";
  const invalidOf = (el, tag) => {
    const aria = (el.getAttribute("aria-invalid") || "").trim().toLowerCase();
    if (aria && aria !== "false") return true;
    if (!FORM.includes(tag)) return false;
    // the browser's own check: once the field was left or its form sent (:user-invalid), or
    // as soon as it holds a value it finds invalid (an empty required field is not flagged
    // before that)
    return (!!userInvalid && el.matches(userInvalid)) || (!!el.value && el.matches(":invalid"));
  };
  const descriptionOf = (el, invalid) => {
    const parts = [idsText(el, "aria-describedby"), el.getAttribute("aria-description")];
    if (invalid) {
      parts.push(idsText(el, "aria-errormessage"));
      if (el.validationMessage) parts.push(el.validationMessage);
    }
    const seen = [];
    for (const p of parts) {
      const c = clean(p);
      if (c && !seen.some((s) => s.includes(c))) seen.push(c);
    }
    return seen.length ? seen.join(" ").slice(0, 300) : null;
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
    if (role === "scrollable") {
      const down = el.scrollHeight > el.clientHeight + 1;
      const at = Math.round(down ? el.scrollTop : el.scrollLeft);
      const end = Math.max(0, down ? el.scrollHeight - el.clientHeight : el.scrollWidth - el.clientWidth);
      return `${at} of ${Math.round(end)} px ${down ? "down" : "across"}`;
    }
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
  const scrollers = new Map();  // scroll box -> its id
  let busyEl = null;

  // ---- style rules: the selectors of rules that set a cursor or a scrolling overflow,
  // kept per sheet (in quiet.js's state) until its rule count changes
  const sheetCache = (window[QUIET] && (window[QUIET].sheets ||
    (window[QUIET].sheets = new WeakMap()))) || new WeakMap();
  const sheetRules = (sheet) => {
    let rules;
    try { rules = sheet.cssRules; } catch (e) { return null; }  // cross-origin: unreadable
    if (!rules) return null;
    const known = sheetCache.get(sheet);
    if (known && known.n === rules.length) return known.selectors;
    const selectors = [];
    const visit = (list) => {
      for (const rule of list) {
        const s = rule.style;
        if (s && rule.selectorText) {
          const cursor = s.cursor || "";
          const over = (s.overflowX || "") + " " + (s.overflowY || "") + " " +
            (s.getPropertyValue("overflow") || "");
          if (/pointer|grab|move|var\(/.test(cursor) || SCROLLS.test(over) || over.includes("var(")) {
            selectors.push(rule.selectorText.replace(STATE_PSEUDO, ""));
          }
        }
        if (rule.cssRules && rule.cssRules.length && !s) visit(rule.cssRules);  // @media…
      }
    };
    try { visit(rules); } catch (e) { return null; }
    sheetCache.set(sheet, { n: rules.length, selectors });
    return selectors;
  };
  // the elements whose style may make them clickable, draggable or scrollable; null: every
  // element (a sheet could not be read)
  const styled = (root) => {
    const selectors = [];
    const sheets = [...(root.styleSheets || []), ...(root.adoptedStyleSheets || [])];
    for (const sheet of sheets) {
      const found = sheetRules(sheet);
      if (found === null) return null;
      for (const s of found) selectors.push(s);
    }
    const found = new Set(root.querySelectorAll(EXTRA));
    if (!selectors.length) return found;
    try {
      for (const el of root.querySelectorAll(":is(" + selectors.join(",") + ")")) found.add(el);
    } catch (e) {
      for (const s of selectors) {
        try { for (const el of root.querySelectorAll(s)) found.add(el); } catch (e2) { /* skip */ }
      }
    }
    return found;
  };
  // a click handler React or Vue keeps on the element (they listen at the root); looked for
  // only on a page either has rendered (its root, or one of the body's children, says so)
  const FRAMEWORK_KEY = /^(__react|__vue|_vei$)/;
  const usesFramework = (() => {
    const body = document.body;
    if (!body) return false;
    const roots = [...body.children, ...document.querySelectorAll(
      "[data-reactroot], [data-v-app], #root, #app, #__next")].slice(0, 50);
    return roots.some((el) => Object.keys(el).some((k) => FRAMEWORK_KEY.test(k)));
  })();
  const frameworkClick = (el) => {
    if (!usesFramework) return false;
    for (const key of Object.keys(el)) {
      if (key.startsWith("__reactProps$")) {
        const p = el[key] || {};
        if (p.onClick || p.onMouseDown || p.onPointerDown) return true;
      } else if (key === "_vei") {
        const v = el._vei || {};
        if (v.onClick || v.onMousedown || v.onPointerdown) return true;
      }
    }
    return false;
  };
  const scrolls = (el, style) =>
    (SCROLLS.test(style.overflowY) && el.scrollHeight > el.clientHeight + 1) ||
    (SCROLLS.test(style.overflowX) && el.scrollWidth > el.clientWidth + 1);

  const walkRoot = (root, ctx) => {
    root.querySelectorAll("[data-fs-id]").forEach((el) => el.removeAttribute("data-fs-id"));
    root.querySelectorAll("[data-fs-frame]").forEach((el) => el.removeAttribute("data-fs-frame"));
    const matched = new Set(root.querySelectorAll(SELECTOR));
    for (const el of matched) matchedAll.add(el);
    const styles = styled(root);
    const win = (root.ownerDocument || root).defaultView || window;
    const listeners = (win[QUIET] && win[QUIET].listeners) || null;
    if (!busyEl) {
      const busy = root.querySelector("[aria-busy='true']");
      if (busy && visibleBox(busy)) busyEl = busy;
    }
    for (const el of root.querySelectorAll("*")) {
      const bits = (listeners && listeners.get(el)) || 0;
      const look = styles === null || styles.has(el);
      if (matched.has(el)) consider(el, ctx, bits, look, false);
      else if (bits || look || el.onclick || frameworkClick(el)) consider(el, ctx, bits, look, true);
      if (el.shadowRoot) { markHost(el); walkRoot(el.shadowRoot, ctx); }
      if (el.tagName === "IFRAME" || el.tagName === "FRAME") enterFrame(el, ctx);
    }
  };
  // What an element no selector found is, if anything: its role, or null.
  const extraRole = (el, bits, style) => {
    const tag = el.tagName;
    if (tag === "HTML" || tag === "BODY") return null;
    if (tag === "CANVAS") return "canvas";
    const cursor = style ? style.cursor : "";
    if (el.getAttribute("draggable") === "true" || el.hasAttribute("aria-grabbed") ||
        (bits & DRAG) || /grab|move/.test(cursor)) return "draggable";
    const effect = el.getAttribute("aria-dropeffect");
    if (el.hasAttribute("dropzone") || (effect && effect !== "none") || (bits & DROP)) {
      return "dropzone";
    }
    if (style && scrolls(el, style)) return "scrollable";
    let click = (bits & CLICK) || !!el.onclick || frameworkClick(el);
    if (!click && cursor === "pointer") {  // its own, not inherited from its parent
      const parent = composedParent(el);
      click = !parent || parent.nodeType !== 1 || getComputedStyle(parent).cursor !== "pointer";
    }
    if (!click) return null;
    if (tag === "LABEL" && el.control) return null;  // a click on it is one on its control
    for (let n = composedParent(el); n; n = composedParent(n)) {
      if (matchedAll.has(n)) return null;  // part of a listed control
    }
    // a wrapper of several controls is a delegation root or a layout box, not a control
    if (el.querySelectorAll(SELECTOR).length > 3) return null;
    return "clickable";
  };
  const consider = (el, ctx, bits, look, extra) => {
    const tag = el.tagName.toLowerCase();
    if (tag === "input" && (el.type || "").toLowerCase() === "hidden") return;
    let role = null;
    let style = null;
    if (extra) {
      style = look ? getComputedStyle(el) : null;
      role = extraRole(el, bits, style);
      if (!role) return;
    } else {
      // a control inside a listed link/button is part of it, not a separate action
      const parent = composedParent(el);
      const outer = parent && parent.closest && parent.closest("a[href],button,[role=button],[role=link]");
      if (outer && matchedAll.has(outer) && !FORM.includes(tag)) return;
      if (look) style = getComputedStyle(el);
    }
    const rect = visibleBox(el);
    if (!rect) return;
    if (role === "canvas" && (rect.width * rect.height < MIN_CANVAS || rect.width < 24 ||
                              rect.height < 24)) return;
    const scrollBox = !!style && scrolls(el, style);
    if (!role) role = scrollBox && plain(el) ? "scrollable" : roleOf(el);
    const box = { left: rect.left + ctx.x, top: rect.top + ctx.y,
                  right: rect.right + ctx.x, bottom: rect.bottom + ctx.y };
    const near = { left: ctx.clip.left - viewW, right: ctx.clip.right + viewW,
                   top: ctx.clip.top - viewH, bottom: ctx.clip.bottom + viewH };
    const prefix = PREFIX[role] || "B";
    counters[prefix] = (counters[prefix] || 0) + 1;
    const id = prefix + counters[prefix];
    if (scrollBox) scrollers.set(el, id);
    const effect = el.getAttribute("aria-dropeffect");
    const draggable = role === "draggable" || el.getAttribute("draggable") === "true" ||
      el.hasAttribute("aria-grabbed") || !!(bits & DRAG) || (!!style && /grab|move/.test(style.cursor));
    const dropTarget = role === "dropzone" || el.hasAttribute("dropzone") ||
      (!!effect && effect !== "none") || !!(bits & DROP);
    candidates.push({ el, ctx, rect, role, id, scrollBox, draggable, dropTarget,
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
  // the scroll box each listed element sits in (the nearest one), listed too
  const containerOf = new Map();
  const scrollContainer = (el) => {
    const path = [];
    let found = null;
    for (let n = composedParent(el); n && n.nodeType === 1; n = composedParent(n)) {
      if (containerOf.has(n)) { found = containerOf.get(n); break; }
      path.push(n);
      if (scrollers.has(n)) { found = n; break; }
    }
    for (const n of path) containerOf.set(n, found);
    return found;
  };
  if (geometry && scrollers.size) {
    const inList = new Set(listed);
    const byEl = new Map(candidates.map((c) => [c.el, c]));
    for (const c of [...listed]) {
      const box = scrollContainer(c.el);
      c.container = box;
      const own = box && byEl.get(box);
      if (own && !inList.has(own)) { inList.add(own); listed.push(own); }
    }
  }
  // an element its scroll box hides (scrolled out of it) is not on screen
  const boxRects = new Map();
  for (const c of listed) {
    if (!c.inView || !c.container) continue;
    let clip = boxRects.get(c.container);
    if (!clip) boxRects.set(c.container, clip = c.container.getBoundingClientRect());
    if (!intersects(c.rect, clip)) c.inView = false;
  }
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
    const tag = el.tagName.toLowerCase();
    const invalid = invalidOf(el, tag);
    const name = names.get(c) ||
      (CONTAINERS.has(c.role) ? containerName(el, c.role) : nameOf(el, c.role));
    const action = {
      id: c.id, role: c.role, name, value: valueOf(el, c.role),
      enabled: !disabled, selector: cssPath(el), frame: c.ctx.frame, in_viewport: c.inView,
      covered: covered.covered, covered_by: covered.covered ? describeEl(covered.by) : null,
    };
    // the fields of issue 22 only when they are not their defaults (a shorter answer)
    if (readonlyOf(el)) action.readonly = true;
    if (invalid) action.invalid = true;
    const description = descriptionOf(el, invalid);
    if (description) action.description = description;
    if (c.draggable) action.draggable = true;
    if (c.dropTarget) action.drop_target = true;
    if (geometry) {
      action.box = { x: Math.round(c.rect.left + c.ctx.x), y: Math.round(c.rect.top + c.ctx.y),
                     width: Math.round(c.rect.width), height: Math.round(c.rect.height) };
      if (c.container) action.scroll_container = scrollers.get(c.container);
    }
    if (el.isContentEditable && !FORM.includes(tag)) action.editable = true;
    return { c, covered, action };
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
    frames, text: text.slice(textOffset, textOffset + maxText), textLength: text.length,
    busy: busyEl ? describeEl(busyEl) : null,
    navStatus: (performance.getEntriesByType("navigation")[0] || {}).responseStatus || null,
    sinceDom: performance.now() - (window[Symbol.for("flask_sessions.quiet")] || { last: -1e9 }).last,
    // the Notte routes' viewport (issue 21): where the window is scrolled, and the page's size
    viewport: { scroll_x: Math.round(scrollX), scroll_y: Math.round(scrollY), width: innerWidth,
      height: innerHeight, page_width: document.documentElement.scrollWidth,
      page_height: document.documentElement.scrollHeight },
  };
}

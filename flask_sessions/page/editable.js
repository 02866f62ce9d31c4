// Runs on one contenteditable element (a rich-text editor): its content as Markdown, with the
// formatting a person sees. Editors mark bold, italics and strike-through with tags (<b>,
// <strong>, <em>, <s>) or with styled spans (font-weight: 700): the computed style is read on
// the live element and turned into tags (or ~~) on a clone, which turndown (the converter of
// scrape.js, with our rules) converts.
(el) => {
  const KEY = Symbol.for("flask_sessions.markdown");
  let toMarkdown = window[KEY];
  if (typeof toMarkdown !== "function") {
    const TurndownService = (() => {
      const module = { exports: {} };
      //@turndown
      return module.exports;
    })();
    toMarkdown = (//@markdown
    )(TurndownService);
    Object.defineProperty(window, KEY, { value: toMarkdown, configurable: true });
  }
  const live = [el, ...el.querySelectorAll("*")];
  const clone = el.cloneNode(true);
  const copies = [clone, ...clone.querySelectorAll("*")];
  const style = new Map(live.map((node) => [node, getComputedStyle(node)]));
  const bold = (s) => Number(s.fontWeight) >= 600;
  const italic = (s) => s.fontStyle === "italic" || s.fontStyle.startsWith("oblique");
  const struck = (s) => s.textDecorationLine.includes("line-through");
  const TAGS = { bold: ["B", "STRONG", "H1", "H2", "H3", "H4", "H5", "H6", "TH"],
                 italic: ["I", "EM"] };
  // strike-through as GitHub's ~~ (turndown's core has no rule for it; scrape keeps its own)
  const tilde = (node) => {
    node.insertBefore(document.createTextNode("~~"), node.firstChild);
    node.appendChild(document.createTextNode("~~"));
  };
  const wrap = (node, tag) => {
    const inner = document.createElement(tag);
    while (node.firstChild) inner.appendChild(node.firstChild);
    node.appendChild(inner);
  };
  for (let i = 1; i < live.length && i < copies.length; i++) {
    const node = live[i];
    const s = style.get(node);
    const parent = style.get(node.parentElement) || style.get(el);
    if (!s || !parent) continue;
    if (s.display === "none" || s.visibility === "hidden") { copies[i].remove(); continue; }
    if (bold(s) && !bold(parent) && !TAGS.bold.includes(node.tagName)) wrap(copies[i], "strong");
    if (italic(s) && !italic(parent) && !TAGS.italic.includes(node.tagName)) wrap(copies[i], "em");
    if (struck(s) && !struck(parent)) tilde(copies[i]);
  }
  clone.querySelectorAll("[data-fs-id]").forEach((n) => n.removeAttribute("data-fs-id"));
  clone.querySelectorAll("script, style, template").forEach((n) => n.remove());
  return toMarkdown(clone);
}

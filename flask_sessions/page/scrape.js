// Runs in the page: the page or `selector`'s part as `format` ("markdown", "text" or "html"),
// with the page's title and URL. Returns null when the selector matches nothing.
// Markdown is converted here, by turndown and our rules (markdown.js); if that throws (a page
// that broke a built-in it uses), the cleaned HTML comes back instead and Python converts it.
({ selector, format }) => {
  const root = selector ? document.querySelector(selector) : document.body || document.documentElement;
  if (!root) return null;
  const page = { title: document.title, url: location.href };
  if (format === "text") {
    const text = (root.innerText || "").replace(/[ \t\u00a0]+/g, " ").replace(/ *\n */g, "\n")
      .replace(/\n{3,}/g, "\n\n").trim();
    return { ...page, text };
  }
  // CSS-hidden elements (display:none, visibility:hidden) are not part of the page a
  // person sees: mark them on the live page, clone, then drop the marked ones.
  const marked = [];
  for (const el of [root, ...root.querySelectorAll("*")]) {
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") {
      el.setAttribute("data-fs-hidden", "");
      marked.push(el);
    }
  }
  const clone = root.cloneNode(true);
  marked.forEach((el) => el.removeAttribute("data-fs-hidden"));
  clone.querySelectorAll("[data-fs-hidden]").forEach((el) => el.remove());
  const DROP = "script, style, noscript, template, link, meta, iframe, object, embed, svg, canvas, [hidden], [aria-hidden='true']";
  clone.querySelectorAll(DROP).forEach((el) => el.remove());
  clone.querySelectorAll("[data-fs-id]").forEach((el) => el.removeAttribute("data-fs-id"));
  // absolute links, so the Markdown is usable outside the page
  clone.querySelectorAll("a[href]").forEach((a) => a.setAttribute("href", a.href));
  clone.querySelectorAll("img[src]").forEach((img) => img.setAttribute("src", img.src));
  if (format === "markdown") {
    try {
      // The converter is made once per document and kept on the window (under a symbol,
      // not enumerable): its functions stay JIT-warm, which halves the time on large pages.
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
      const markdown = toMarkdown(clone);
      if (typeof markdown === "string") return { ...page, markdown };
    } catch (error) {
      // fall through: Python converts the HTML
    }
  }
  return { ...page, html: clone.outerHTML };
}

// Runs in the page: the cleaned HTML and visible text of the page or of `selector`.
// Returns null when the selector matches nothing.
(selector) => {
  const root = selector ? document.querySelector(selector) : document.body || document.documentElement;
  if (!root) return null;
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
  const text = (root.innerText || "").replace(/[ \t\u00a0]+/g, " ").replace(/ *\n */g, "\n")
    .replace(/\n{3,}/g, "\n\n").trim();
  return { html: clone.outerHTML, text, title: document.title, url: location.href };
}

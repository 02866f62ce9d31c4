// Runs in the page, with turndown (vendor/turndown.js) in scope as `TurndownService`:
// flask_sessions' Markdown, the same as markdownify gave before (page/markdown.py):
// `#` headings, `-` bullets, nested lists indented by their marker's width, pipe tables with
// `|` escaped and line breaks as <br> inside cells, `*` and `_` escaped in text, links and
// images as they are (scrape.js made them absolute). Returns `(element) => markdown`.
(TurndownService) => {
  const service = new TurndownService({
    headingStyle: "atx",
    bulletListMarker: "-",
    codeBlockStyle: "fenced",
    emDelimiter: "*",
    hr: "---",
  });
  service.escape = (text) => text.replace(/\*/g, "\\*").replace(/_/g, "\\_");

  const inCell = (node) => {
    for (let p = node.parentNode; p; p = p.parentNode) {
      if (p.nodeName === "TD" || p.nodeName === "TH") return true;
      if (p.nodeName === "TABLE") return false;
    }
    return false;
  };
  const span = (cell) => Math.max(1, Number(cell.getAttribute("colspan")) || 1);

  service.addRule("listItem", {
    filter: "li",
    replacement(content, node) {
      const list = node.parentNode;
      let prefix = "- ";
      if (list.nodeName === "OL") {
        const start = Number(list.getAttribute("start") || 1);
        prefix = start + Array.prototype.indexOf.call(list.children, node) + ". ";
      }
      const paragraph = /\n$/.test(content);
      content = content.replace(/^\n+/, "").replace(/\n+$/, "") + (paragraph ? "\n" : "");
      content = content.replace(/\n(?=.)/g, "\n" + " ".repeat(prefix.length));
      return prefix + content + (node.nextSibling ? "\n" : "");
    },
  });
  service.addRule("autolink", {
    filter: (node) =>
      node.nodeName === "A" && !node.title && node.getAttribute("href") &&
      node.textContent === node.getAttribute("href"),
    replacement: (content, node) => "<" + node.getAttribute("href") + ">",
  });
  service.addRule("preformatted", {
    filter: (node) => node.nodeName === "PRE" && !(node.firstChild && node.firstChild.nodeName === "CODE"),
    replacement: (content, node) => "\n\n```\n" + node.textContent.replace(/\n$/, "") + "\n```\n\n",
  });
  // Tables: a row per line, cells that cannot break it; the first row is the header, or an
  // empty header is added when the table has none (as markdownify does).
  service.addRule("cellBreak", {
    filter: (node) => node.nodeName === "BR" && inCell(node),
    replacement: () => "<br>",
  });
  service.addRule("tableCell", {
    filter: ["th", "td"],
    replacement(content, node) {
      // paragraphs and other blocks in a cell run on with a space; <br> stays a line break
      const text = content.replace(/\s+/g, " ").replace(/ ?<br> ?/g, "<br>").trim()
        .replace(/^(<br>)+|(<br>)+$/g, "").replace(/(^|[^\\])\|/g, "$1\\|")
        .replace(/(^|[^\\])\|/g, "$1\\|");
      return " " + text + " |".repeat(span(node));
    },
  });
  service.addRule("tableRow", {
    filter: "tr",
    replacement(content, node) {
      const cells = Array.from(node.children);
      const columns = cells.reduce((sum, cell) => sum + span(cell), 0);
      const section = node.parentNode;
      const table = node.closest("table");
      const first = !node.previousElementSibling;
      const head = cells.length > 0 && cells.every((cell) => cell.nodeName === "TH") ||
        (section.nodeName === "THEAD" && section.querySelectorAll(":scope > tr").length === 1);
      const rule = "|" + " --- |".repeat(columns) + "\n";
      let before = "";
      let after = "";
      if (first && head) {
        after = rule;
      } else if (first && (section.nodeName !== "TBODY" || !(table && table.tHead))) {
        before = "|" + "  |".repeat(columns) + "\n" + rule;
      }
      return before + "|" + content.replace(/\n/g, " ") + "\n" + after;
    },
  });
  service.addRule("tableSection", {
    filter: ["thead", "tbody", "tfoot"],
    replacement: (content) => content,
  });
  service.addRule("table", {
    filter: "table",
    replacement: (content) => "\n\n" + content.replace(/\n+/g, "\n") + "\n\n",
  });
  service.addRule("tableExtras", { filter: ["caption", "colgroup", "col"], replacement: () => "" });

  return (element) => {
    // turndown converts what is inside the node it is given: wrap, so the element counts too
    const box = document.createElement("div");
    box.appendChild(element);
    return service.turndown(box);
  };
}

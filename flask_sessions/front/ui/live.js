// The live view of one session: plain JavaScript, no build step, no dependency.
//
// It connects to the session's live socket (the <meta name="live-socket"> the server wrote)
// with the one-use ticket of its own URL's fragment, draws each JPEG frame on the canvas, and,
// when the ticket is interactive, sends mouse, wheel, keys and pasted text as JSON. The
// server maps coordinates (fractions of the frame) to the page and refuses input of a
// view-only ticket whatever this page sends. Strings from the server (the page's URL, close
// reasons) are written with textContent only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    canvas: $("screen"),
    keys: $("keys"),
    mode: $("mode"),
    url: $("url"),
    tabs: $("tabs"),
    ends: $("ends"),
    message: $("message"),
    stage: $("stage"),
  };
  const ctx = el.canvas.getContext("2d");
  const socket = document.querySelector('meta[name="live-socket"]').content;
  const ticket = new URLSearchParams(window.location.hash.slice(1)).get("ticket");
  // The ticket works once: off the address bar, so it is not bookmarked or shared by mistake.
  if (window.location.hash) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  let ws = null;
  let interactive = false;
  let frames = 0;
  let decoding = false;
  let nextFrame = null; // the newest frame that arrived while one was decoding
  let box = { x: 0, y: 0, w: 0, h: 0 }; // where the frame is drawn, in CSS pixels
  let pendingMove = null;
  let sizeTimer = null;

  function say(text, isError) {
    el.message.textContent = text;
    el.message.classList.toggle("error", Boolean(isError));
    el.message.hidden = !text;
  }

  // ------------------------------------------------------------------ the socket

  function connect() {
    if (!socket) {
      say("This session has no live view here: it has ended, or its server is not running.", true);
      el.mode.textContent = "unavailable";
      return;
    }
    if (!ticket) {
      say("This address has no ticket: open the viewer_url exactly as it was given.", true);
      el.mode.textContent = "no ticket";
      return;
    }
    ws = new WebSocket(socket + "?ticket=" + encodeURIComponent(ticket));
    ws.binaryType = "blob";
    ws.onmessage = (event) => {
      if (typeof event.data === "string") {
        control(JSON.parse(event.data));
      } else {
        frame(event.data);
      }
    };
    ws.onopen = () => sendSize();
    ws.onclose = (event) => {
      const reason = event.reason || (event.code === 1006 ? "the connection was refused or lost" : "closed");
      say("The live view ended: " + reason + ".", event.code !== 1000);
      el.mode.textContent = "ended";
      el.mode.className = "mode ended";
      el.keys.blur();
    };
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  function control(message) {
    if (message.type === "hello") {
      interactive = Boolean(message.interactive);
      el.mode.textContent = interactive ? "you can click and type" : "view only";
      el.mode.className = "mode " + (interactive ? "interactive" : "view");
      el.canvas.classList.toggle("interactive", interactive);
      if (message.expires_at) {
        const ends = new Date(message.expires_at);
        el.ends.textContent = "until " + ends.toLocaleTimeString();
      }
      say("");
    } else if (message.type === "page") {
      el.url.textContent = message.url || "";
      el.tabs.textContent = message.tabs > 1 ? `tab ${message.tab + 1} of ${message.tabs}` : "";
    }
  }

  // ------------------------------------------------------------------ frames

  function frame(blob) {
    if (decoding) {
      nextFrame = blob; // only the newest waits: older ones are dropped
      return;
    }
    decoding = true;
    createImageBitmap(blob)
      .then((bitmap) => {
        draw(bitmap);
        bitmap.close();
      })
      .catch(() => {})
      .finally(() => {
        decoding = false;
        if (nextFrame) {
          const next = nextFrame;
          nextFrame = null;
          frame(next);
        }
      });
  }

  function draw(bitmap) {
    const ratio = window.devicePixelRatio || 1;
    const width = el.canvas.width;
    const height = el.canvas.height;
    const scale = Math.min(width / bitmap.width, height / bitmap.height);
    const w = Math.round(bitmap.width * scale);
    const h = Math.round(bitmap.height * scale);
    const x = Math.floor((width - w) / 2);
    const y = Math.floor((height - h) / 2);
    ctx.fillStyle = "#1b1f24";
    ctx.fillRect(0, 0, width, height);
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, x, y, w, h);
    box = { x: x / ratio, y: y / ratio, w: w / ratio, h: h / ratio };
    frames += 1;
    const data = el.canvas.dataset;
    data.frames = String(frames);
    data.frameX = box.x.toFixed(1);
    data.frameY = box.y.toFixed(1);
    data.frameW = box.w.toFixed(1);
    data.frameH = box.h.toFixed(1);
    data.bitmapW = String(bitmap.width); // the frame as the server sent it
    data.bitmapH = String(bitmap.height);
  }

  // The canvas fills the stage at the screen's pixel density; the server sends frames of
  // about that size (never larger than the session's viewport).
  function fit() {
    const ratio = window.devicePixelRatio || 1;
    const rect = el.stage.getBoundingClientRect();
    el.canvas.style.width = rect.width + "px";
    el.canvas.style.height = rect.height + "px";
    el.canvas.width = Math.max(1, Math.round(rect.width * ratio));
    el.canvas.height = Math.max(1, Math.round(rect.height * ratio));
    clearTimeout(sizeTimer);
    sizeTimer = setTimeout(sendSize, 150);
  }

  function sendSize() {
    send({ type: "size", width: el.canvas.width, height: el.canvas.height });
  }

  new ResizeObserver(fit).observe(el.stage);

  // ------------------------------------------------------------------ input

  function modifiers(event) {
    return (event.altKey ? 1 : 0) | (event.ctrlKey ? 2 : 0) | (event.metaKey ? 4 : 0) | (event.shiftKey ? 8 : 0);
  }

  // Where the pointer is, as fractions of the frame (the server maps them to the page).
  function position(event) {
    const rect = el.canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left - box.x) / (box.w || 1);
    const y = (event.clientY - rect.top - box.y) / (box.h || 1);
    return { x: Math.min(1, Math.max(0, x)), y: Math.min(1, Math.max(0, y)) };
  }

  const BUTTONS = ["left", "middle", "right", "back", "forward"];

  function mouse(kind, event) {
    const at = position(event);
    const message = {
      type: "mouse",
      event: kind,
      x: at.x,
      y: at.y,
      button: kind === "move" ? "none" : BUTTONS[event.button] || "left",
      buttons: event.buttons,
      modifiers: modifiers(event),
    };
    if (kind !== "move") message.clickCount = Math.min(3, Math.max(1, event.detail || 1));
    return message;
  }

  el.canvas.addEventListener("pointerdown", (event) => {
    if (!interactive) return;
    event.preventDefault();
    el.keys.focus({ preventScroll: true });
    el.canvas.setPointerCapture(event.pointerId);
    send(mouse("down", event));
  });
  el.canvas.addEventListener("pointerup", (event) => {
    if (!interactive) return;
    event.preventDefault();
    send(mouse("up", event));
  });
  el.canvas.addEventListener("pointermove", (event) => {
    if (!interactive) return;
    if (!pendingMove) requestAnimationFrame(flushMove);
    pendingMove = mouse("move", event); // one move per animation frame
  });
  function flushMove() {
    if (pendingMove) send(pendingMove);
    pendingMove = null;
  }
  el.canvas.addEventListener(
    "wheel",
    (event) => {
      if (!interactive) return;
      event.preventDefault();
      const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? box.h || 600 : 1;
      const at = position(event);
      send({
        type: "wheel",
        x: at.x,
        y: at.y,
        deltaX: event.deltaX * unit,
        deltaY: event.deltaY * unit,
        modifiers: modifiers(event),
      });
    },
    { passive: false },
  );
  el.canvas.addEventListener("contextmenu", (event) => {
    if (interactive) event.preventDefault(); // the right button goes to the page
  });

  // Keys: the hidden textarea holds the focus, so shortcuts, composition (IME) and paste all
  // reach this page; what they mean goes to the session's page.
  function pasting(event) {
    return (event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "v";
  }
  function key(kind, event) {
    if (!interactive || event.isComposing || event.keyCode === 229) return;
    if (pasting(event)) return; // the paste event sends the text
    event.preventDefault();
    send({
      type: "key",
      event: kind,
      key: event.key,
      code: event.code,
      keyCode: event.keyCode || 0,
      location: event.location || 0,
      modifiers: modifiers(event),
      repeat: event.repeat,
    });
  }
  el.keys.addEventListener("keydown", (event) => key("down", event));
  el.keys.addEventListener("keyup", (event) => key("up", event));
  el.keys.addEventListener("compositionend", (event) => {
    if (interactive && event.data) send({ type: "text", text: event.data });
    el.keys.value = "";
  });
  el.keys.addEventListener("input", (event) => {
    if (!event.isComposing) el.keys.value = "";
  });
  el.keys.addEventListener("paste", (event) => {
    event.preventDefault();
    const text = event.clipboardData ? event.clipboardData.getData("text/plain") : "";
    if (interactive && text) send({ type: "paste", text: text.slice(0, 100000) });
  });

  fit();
  connect();
})();

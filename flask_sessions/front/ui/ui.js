// The live sessions page of flask_sessions: plain JavaScript, no build step, no dependency.
//
// It calls the JSON API only, with the token the user typed (kept in sessionStorage: this
// tab only). Every string from the server (titles and URLs are whatever the visited pages
// say) is written with textContent, never as HTML.
"use strict";

(() => {
  const TOKEN_KEY = "flask_sessions.ui.token";
  const LIST_EVERY_MS = 2000; // the sessions list
  const THUMB_EVERY_MS = 3000; // each active session's thumbnail
  const TICK_MS = 500; // countdowns and idle times
  const RESYNC_MS = 1500; // re-read the server's clock when ours drifts further than this
  // Thumbnails are small JPEGs that do not count as access (touch=false): watching never
  // keeps a session alive.
  const THUMB_QUERY = "format=jpeg&quality=60&touch=false";

  // This page is <prefix>/ui: "." is <prefix>/, wherever the blueprint is mounted.
  const base = new URL(".", window.location.href);
  const $ = (id) => document.getElementById(id);
  const el = {
    login: $("login"),
    token: $("token"),
    loginError: $("login-error"),
    tools: $("tools"),
    filter: $("filter"),
    updated: $("updated"),
    signout: $("signout"),
    message: $("message"),
    view: $("view"),
    rows: $("rows"),
    empty: $("empty"),
    template: $("row"),
    lightbox: $("lightbox"),
    lbTitle: $("lb-title"),
    lbImg: $("lb-img"),
    lbClose: $("lb-close"),
    lbLive: $("lb-live"),
    profilesView: $("profiles-view"),
    profileRows: $("profile-rows"),
    profilesEmpty: $("profiles-empty"),
    // session files (issue 19)
    filesbox: $("filesbox"),
    fbTitle: $("fb-title"),
    fbRows: $("fb-rows"),
    fbEmpty: $("fb-empty"),
    fbTable: $("fb-table"),
    fbZip: $("fb-zip"),
    fbClose: $("fb-close"),
  };
  const PROFILES_EVERY_MS = 10000; // the profiles list (profiles, issue 18)
  let profilesAt = 0;

  let token = null;
  const rows = new Map(); // session_id -> row state
  let offsetMs = null; // server clock minus ours, from the sessions' own times
  let listTimer = null;
  let thumbTimer = null;
  let loopId = 0; // one list loop at a time
  let thumbsRunning = false;
  // Thumbnails are fetched only for rows on screen: a long list costs the server nothing
  // for what nobody sees.
  const onScreen = new IntersectionObserver((entries) => {
    let appeared = false;
    for (const entry of entries) {
      const row = rows.get(entry.target.closest("tr").dataset.sessionId);
      if (!row) continue;
      row.onScreen = entry.isIntersecting;
      appeared ||= entry.isIntersecting;
    }
    if (appeared) refreshThumbs();
  });
  let lightboxFor = null; // session_id shown enlarged
  let generation = 0; // bumps on sign-out: late answers of the old token are dropped

  // ------------------------------------------------------------------ time

  function serverNow() {
    return Date.now() + (offsetMs ?? 0);
  }

  // ISO 8601 durations as the API writes them: PT2M11.2S, P1DT3H, PT0S.
  function parseDuration(text) {
    const m = /^(-)?P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(
      text || "",
    );
    if (!m) return null;
    const [, neg, d, h, min, s] = m;
    const ms = (((+(d || 0) * 24 + +(h || 0)) * 60 + +(min || 0)) * 60 + +(s || 0)) * 1000;
    return neg ? -ms : ms;
  }

  // The server's "now" is an active session's created_at + duration: the clock that
  // decides timeouts, whatever this computer's clock says.
  function syncClock(sessions) {
    for (const s of sessions) {
      if (s.status !== "active") continue;
      const duration = parseDuration(s.duration);
      const created = Date.parse(s.created_at);
      if (duration === null || Number.isNaN(created)) continue;
      const candidate = created + duration - Date.now();
      if (offsetMs === null || Math.abs(candidate - offsetMs) > RESYNC_MS) offsetMs = candidate;
      return;
    }
  }

  function span(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function clockTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "?";
    const today = new Date().toDateString() === d.toDateString();
    const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return today ? time : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${token}`, ...(options.headers || {}) };
    let response;
    try {
      response = await fetch(new URL(path, base), { ...options, headers, cache: "no-store" });
    } catch (exc) {
      if (exc instanceof TypeError && /header/i.test(exc.message)) {
        throw new ApiError(401, "the token has characters an HTTP header cannot carry");
      }
      throw new ApiError(0, "cannot reach the server");
    }
    if (response.ok) return response;
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") message = body.error;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, message);
  }

  // ------------------------------------------------------------------ sign in and out

  function showLogin(error) {
    stopTimers();
    el.view.hidden = true;
    el.tools.hidden = true;
    el.message.hidden = true;
    el.login.hidden = false;
    el.loginError.hidden = !error;
    el.loginError.textContent = error || "";
    el.token.value = "";
    el.token.focus();
  }

  function signOut(error) {
    generation += 1;
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const row of rows.values()) dropThumb(row);
    onScreen.disconnect();
    rows.clear();
    el.rows.replaceChildren();
    el.profileRows.replaceChildren();
    el.profilesView.hidden = true;
    profilesAt = 0;
    offsetMs = null;
    closeLightbox();
    showLogin(error);
  }

  function signIn(value) {
    token = value;
    sessionStorage.setItem(TOKEN_KEY, value);
    el.login.hidden = true;
    el.tools.hidden = false;
    el.view.hidden = false;
    el.updated.textContent = "loading…";
    restartTimers();
  }

  el.login.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = el.token.value.trim();
    if (value) signIn(value);
  });
  el.signout.addEventListener("click", () => signOut(null));

  // ------------------------------------------------------------------ the list

  function showMessage(text) {
    el.message.hidden = !text;
    el.message.textContent = text || "";
  }

  function handleError(exc) {
    if (exc instanceof ApiError && exc.status === 401) {
      signOut(`This token was refused (401): ${exc.message}. Check it and enter it again.`);
      return;
    }
    const retry = `retrying every ${LIST_EVERY_MS / 1000} s`;
    showMessage(exc instanceof ApiError ? `${exc.message} (${retry})` : `${exc} (${retry})`);
  }

  async function refreshList() {
    const mine = generation;
    try {
      const response = await api("sessions", { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (mine !== generation) return;
      const sessions = Array.isArray(body.sessions) ? body.sessions : [];
      syncClock(sessions);
      render(sessions);
      showMessage(null);
      if (Date.now() - profilesAt >= PROFILES_EVERY_MS) refreshProfiles(mine);
      el.updated.textContent = `updated ${clockTime(new Date(serverNow()).toISOString())}`;
    } catch (exc) {
      if (mine === generation) handleError(exc);
    }
  }

  function render(sessions) {
    const seen = new Set();
    // newest first
    const ordered = [...sessions].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
    let previous = null;
    for (const s of ordered) {
      seen.add(s.session_id);
      let row = rows.get(s.session_id);
      if (!row) {
        row = makeRow(s.session_id);
        rows.set(s.session_id, row);
      }
      update(row, s);
      const next = previous ? previous.tr.nextSibling : el.rows.firstChild;
      if (row.tr !== next) el.rows.insertBefore(row.tr, next);
      previous = row;
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        onScreen.unobserve(row.thumbButton);
        dropThumb(row);
        row.tr.remove();
        rows.delete(id);
      }
    }
    applyFilter();
    tick();
  }

  function makeRow(id) {
    const tr = el.template.content.firstElementChild.cloneNode(true);
    tr.dataset.sessionId = id;
    const q = (sel) => tr.querySelector(sel);
    const row = {
      id,
      tr,
      data: null,
      thumbUrl: null,
      thumbBusy: false,
      thumbAt: 0,
      onScreen: false,
      thumbButton: q(".thumb"),
      img: q(".thumb img"),
      nothumb: q(".nothumb"),
      title: q(".title"),
      url: q(".url"),
      sid: q(".sid"),
      status: q(".status"),
      reason: q(".reason"),
      created: q(".created"),
      idle: q(".idle"),
      countdown: q(".countdown"),
      keepalive: q(".keepalive"),
      options: q(".options"),
      pid: q(".pid"),
      psave: q(".psave"),
      close: q(".close"),
      files: q(".files"),
      live: q(".live"),
      trace: q(".trace"),
    };
    row.sid.textContent = id;
    row.sid.title = id;
    row.thumbButton.addEventListener("click", () => openLightbox(row));
    onScreen.observe(row.thumbButton);
    row.close.addEventListener("click", () => closeSession(row));
    row.files.addEventListener("click", () => openFiles(row));
    row.live.addEventListener("click", () => openLive(row));
    row.trace.addEventListener("click", () => downloadTrace(row));
    return row;
  }

  function update(row, s) {
    row.data = s;
    const active = s.status === "active";
    row.tr.dataset.status = s.status;
    row.tr.classList.toggle("ended", !active);
    row.status.textContent = s.status.replace("_", " ");
    row.status.className = `status s-${s.status}`;
    row.reason.textContent = s.error || "";
    row.reason.hidden = !s.error;
    const page = s.page || null;
    const title = page && page.title ? page.title : page ? "(no title)" : "—";
    row.title.textContent = title;
    row.title.title = title;
    row.url.textContent = page ? page.url : "";
    row.url.title = page ? page.url : "";
    row.img.alt = `Screenshot of ${title}`;
    row.thumbButton.setAttribute("aria-label", `Enlarge the screenshot of ${title}`);
    row.created.textContent = clockTime(s.created_at);
    row.created.title = s.created_at;
    row.keepalive.textContent = s.keep_alive ? "yes" : "no";
    const options = optionsText(s.options);
    row.options.textContent = options;
    row.options.title = options;
    row.options.hidden = !options;
    // profiles (issue 18): which profile, persisting or read-only, and a save that failed
    const profile = s.profile || null;
    row.pid.textContent = profile ? profile.profile_id : "—";
    row.pid.title = profile ? `${profile.persist ? "persist" : "read-only"}` : "";
    row.psave.textContent = profile
      ? profile.not_saved || (profile.persist ? (profile.saved_at ? `saved ${clockTime(profile.saved_at)}` : "persist") : "read-only")
      : "";
    row.psave.hidden = !profile;
    row.close.hidden = !active;
    row.files.hidden = !active;
    row.close.disabled = row.close.dataset.busy === "1";
    // live view and recordings: watch (and drive) it; download its trace
    row.live.hidden = !active;
    row.live.textContent = s.viewers ? `Live (${s.viewers})` : "Live";
    row.live.title = "Watch the session live and click or type in it (a new tab)";
    const trace = ["recording", "truncated", "saved"].includes(s.recording);
    row.trace.hidden = !trace;
    row.trace.title = trace ? `Download its Playwright trace (${s.recording})` : "";
    row.tr.classList.toggle("has-trace", trace);
    if (!row.thumbUrl) row.nothumb.textContent = active ? "loading…" : "no picture";
  }

  // per-session browser options (issue 18a): one line under the session id. The record has
  // no credentials and no header values to show.
  function optionsText(o) {
    if (!o) return "";
    const parts = [];
    if (o.device) parts.push(o.device);
    if (o.viewport) parts.push(`${o.viewport.width}×${o.viewport.height}`);
    if (o.locale) parts.push(o.locale);
    if (o.timezone_id) parts.push(o.timezone_id);
    if (o.color_scheme) parts.push(o.color_scheme);
    if (o.user_agent) parts.push(`user agent “${o.user_agent}”`);
    if (o.geolocation) parts.push(`at ${o.geolocation.latitude}, ${o.geolocation.longitude}`);
    if (o.permissions && o.permissions.length) parts.push(`allows ${o.permissions.join(", ")}`);
    if (o.extra_http_headers && o.extra_http_headers.length) {
      parts.push(`headers ${o.extra_http_headers.join(", ")}`);
    }
    if (o.java_script_enabled === false) parts.push("no JavaScript");
    if (o.block_resources && o.block_resources.length) {
      parts.push(`blocks ${o.block_resources.join(", ")}`);
    }
    if (o.proxy) {
      parts.push(`proxy ${o.proxy.server}${o.proxy.authenticated ? " (authenticated)" : ""}`);
    }
    return parts.join(" · ");
  }

  function applyFilter() {
    const wanted = el.filter.value;
    const counts = { "": 0, active: 0, closed: 0, timed_out: 0, error: 0 };
    let shown = 0;
    for (const row of rows.values()) {
      const status = row.data.status;
      counts[""] += 1;
      counts[status] = (counts[status] || 0) + 1;
      const visible = !wanted || status === wanted;
      row.tr.hidden = !visible;
      if (visible) shown += 1;
    }
    for (const option of el.filter.options) {
      const label = option.value ? option.value.replace("_", " ") : "all";
      option.textContent = `${label} (${counts[option.value] || 0})`;
    }
    el.empty.hidden = shown > 0;
    el.rows.parentElement.hidden = shown === 0;
    el.empty.textContent = rows.size
      ? `No ${wanted.replace("_", " ")} sessions.`
      : `No sessions for this token yet: start one with POST ${new URL("session/start", base).pathname}.`;
  }

  el.filter.addEventListener("change", () => {
    applyFilter();
    refreshThumbs();
  });

  // ------------------------------------------------------------------ profiles (issue 18)

  async function refreshProfiles(mine) {
    profilesAt = Date.now();
    try {
      const response = await api("profiles", { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (mine !== generation) return;
      renderProfiles(Array.isArray(body.profiles) ? body.profiles : []);
    } catch (exc) {
      if (mine === generation && exc instanceof ApiError && exc.status === 401) handleError(exc);
      // other errors: the sessions list says what is wrong; try again next time
    }
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function renderProfiles(profiles) {
    el.profilesView.hidden = false;
    const rowsNow = profiles.map((p) => {
      const tr = document.createElement("tr");
      tr.dataset.profileId = p.profile_id;
      const id = document.createElement("code");
      id.textContent = p.profile_id;
      const idCell = cell("", "pid");
      idCell.append(id);
      tr.append(
        cell(p.name, "pname"),
        idCell,
        cell((p.domains || []).join(", ") || "—", "domains"),
        cell(clockTime(p.updated_at), "updated"),
        cell(`${Math.ceil((p.size_bytes || 0) / 1024)} KB`, "size"),
        cell(p.in_use_by || "—", "inuse"),
      );
      return tr;
    });
    el.profileRows.replaceChildren(...rowsNow);
    el.profilesEmpty.hidden = profiles.length > 0;
    el.profileRows.parentElement.hidden = profiles.length === 0;
    el.profilesEmpty.textContent = `No profiles yet: create one with POST ${new URL("profiles", base).pathname}.`;
  }

  // countdowns and idle times, between list refreshes
  function tick() {
    const now = serverNow();
    for (const row of rows.values()) {
      const s = row.data;
      if (s.status !== "active") {
        row.idle.textContent = "—";
        row.countdown.textContent = s.closed_at ? `ended ${clockTime(s.closed_at)}` : "—";
        row.countdown.className = "countdown";
        continue;
      }
      const last = Date.parse(s.last_accessed_at);
      row.idle.textContent = span(now - last);
      if (s.keep_alive) {
        row.countdown.textContent = "none (keep-alive)";
        row.countdown.className = "countdown muted";
        continue;
      }
      const left = last + s.timeout_minutes * 60000 - now;
      row.countdown.textContent = left > 0 ? `in ${span(left)}` : "timing out…";
      row.countdown.className = `countdown${left < 60000 ? " soon" : ""}`;
    }
  }

  // ------------------------------------------------------------------ close

  async function closeSession(row) {
    const mine = generation;
    row.close.dataset.busy = "1";
    row.close.disabled = true;
    row.close.textContent = "Closing…";
    try {
      const response = await api(`session/${encodeURIComponent(row.id)}`, {
        method: "DELETE",
        headers: { Accept: "application/json" },
      });
      const body = await response.json();
      if (mine !== generation) return;
      update(row, body);
      applyFilter();
      tick();
    } catch (exc) {
      if (mine === generation) handleError(exc);
    } finally {
      delete row.close.dataset.busy;
      row.close.disabled = false;
      row.close.textContent = "Close";
    }
  }

  // ------------------------------------------------------------------ live view and recordings

  // A new tab, opened on the click itself (so no popup blocker stops it), then sent to the
  // session's viewer_url once the server mints it; the URL holds a one-use ticket, not the
  // token.
  async function openLive(row) {
    const tab = window.open("", "_blank");
    try {
      const response = await api(`session/${encodeURIComponent(row.id)}/viewer`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ interactive: true }),
      });
      const body = await response.json();
      if (tab) {
        tab.opener = null;
        tab.location.replace(body.viewer_url);
      } else {
        window.location.assign(body.viewer_url);
      }
    } catch (exc) {
      if (tab) tab.close();
      handleError(exc);
    }
  }

  async function downloadTrace(row) {
    row.trace.disabled = true;
    try {
      const response = await api(`session/${encodeURIComponent(row.id)}/recording`, {
        headers: { Accept: "application/zip" },
      });
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = `trace-${row.id}.zip`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (exc) {
      handleError(exc);
    } finally {
      row.trace.disabled = false;
    }
  }

  // ------------------------------------------------------------------ thumbnails

  function dropThumb(row) {
    if (row.thumbUrl) URL.revokeObjectURL(row.thumbUrl);
    row.thumbUrl = null;
  }

  async function loadThumb(row) {
    const mine = generation;
    row.thumbBusy = true;
    try {
      const path = `session/${encodeURIComponent(row.id)}/screenshot?${THUMB_QUERY}`;
      const response = await api(path, { headers: { Accept: "image/jpeg, image/*" } });
      const blob = await response.blob();
      if (mine !== generation || !rows.has(row.id)) return;
      const url = URL.createObjectURL(blob);
      const old = row.thumbUrl;
      row.img.src = url;
      try {
        await row.img.decode();
      } catch {
        // a broken image: keep going, the next refresh replaces it
      }
      row.thumbUrl = url;
      row.img.hidden = false;
      row.nothumb.hidden = true;
      row.thumbButton.disabled = false;
      if (lightboxFor === row.id) el.lbImg.src = url;
      if (old) URL.revokeObjectURL(old);
    } catch (exc) {
      if (mine !== generation) return;
      if (exc instanceof ApiError && exc.status === 401) handleError(exc);
      // 409/404: the session ended or went; the next list refresh shows it
    } finally {
      row.thumbAt = Date.now();
      row.thumbBusy = false;
    }
  }

  // One at a time, oldest picture first: gentle on the server's browser.
  async function refreshThumbs() {
    if (!token || document.hidden || thumbsRunning) return;
    thumbsRunning = true;
    try {
      await refreshDueThumbs();
    } finally {
      thumbsRunning = false;
    }
  }

  async function refreshDueThumbs() {
    const due = [...rows.values()]
      .filter((r) => r.data.status === "active" && r.onScreen && !r.thumbBusy)
      .filter((r) => Date.now() - r.thumbAt >= THUMB_EVERY_MS - 100 || !r.thumbUrl)
      .sort((a, b) => a.thumbAt - b.thumbAt);
    for (const row of due) {
      if (!token || document.hidden) return;
      await loadThumb(row);
    }
  }

  // ------------------------------------------------------------------ lightbox

  function openLightbox(row) {
    if (!row.thumbUrl) return;
    lightboxFor = row.id;
    el.lbImg.src = row.thumbUrl;
    el.lbImg.alt = row.img.alt;
    el.lbTitle.textContent = row.title.textContent;
    el.lbLive.hidden = row.data.status !== "active";
    if (!el.lightbox.open) el.lightbox.showModal();
  }

  function closeLightbox() {
    lightboxFor = null;
    if (el.lightbox.open) el.lightbox.close();
    el.lbImg.removeAttribute("src");
  }

  el.lbClose.addEventListener("click", closeLightbox);
  el.lbLive.addEventListener("click", () => {
    const row = rows.get(lightboxFor);
    if (row) openLive(row);
  });
  el.lightbox.addEventListener("close", () => {
    lightboxFor = null;
    el.lbImg.removeAttribute("src");
  });
  el.lightbox.addEventListener("click", (event) => {
    if (event.target === el.lightbox) closeLightbox(); // a click on the backdrop
  });

  // ------------------------------------------------------------------ session files (issue 19)

  let filesFor = null; // session_id whose files are shown

  function bytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1048576) return `${(n / 1024).toFixed(1)} KB`;
    return `${(n / 1048576).toFixed(1)} MB`;
  }

  async function openFiles(row) {
    const mine = generation;
    filesFor = row.id;
    el.fbTitle.textContent = `Files of ${row.title.textContent}`;
    el.fbRows.replaceChildren();
    if (!el.filesbox.open) el.filesbox.showModal();
    try {
      const response = await api(`session/${encodeURIComponent(row.id)}/files`, {
        headers: { Accept: "application/json" },
      });
      const body = await response.json();
      if (mine !== generation || filesFor !== row.id) return;
      el.fbEmpty.hidden = body.files.length > 0;
      el.fbTable.hidden = body.files.length === 0;
      el.fbZip.hidden = !body.files.some((f) => f.state === "complete");
      for (const file of body.files) el.fbRows.append(fileRow(row.id, file));
    } catch (exc) {
      if (mine === generation) {
        closeFiles();
        handleError(exc);
      }
    }
  }

  function fileRow(id, file) {
    const tr = document.createElement("tr");
    for (const text of [file.name, bytes(file.size), file.source, file.state.replace("_", " ")]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const cell = document.createElement("td");
    if (file.state === "complete") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "download";
      button.textContent = "Download";
      button.setAttribute("aria-label", `Download ${file.name}`);
      button.addEventListener("click", () =>
        saveFile(`session/${encodeURIComponent(id)}/files/${encodeURIComponent(file.name)}`, file.name),
      );
      cell.append(button);
    }
    tr.append(cell);
    return tr;
  }

  // The token is a header, so a plain link cannot fetch the file: it is fetched, then handed
  // to the browser as a blob with the file's name.
  async function saveFile(path, name) {
    try {
      const response = await api(path);
      const url = URL.createObjectURL(await response.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (exc) {
      handleError(exc);
    }
  }

  function closeFiles() {
    filesFor = null;
    if (el.filesbox.open) el.filesbox.close();
  }

  el.fbClose.addEventListener("click", closeFiles);
  el.fbZip.addEventListener("click", () => {
    if (filesFor) saveFile(`session/${encodeURIComponent(filesFor)}/files.zip`, `${filesFor}-files.zip`);
  });
  el.filesbox.addEventListener("close", () => {
    filesFor = null;
  });

  // ------------------------------------------------------------------ timers

  function stopTimers() {
    loopId += 1;
    clearTimeout(listTimer);
    clearInterval(thumbTimer);
    listTimer = null;
    thumbTimer = null;
  }

  async function listLoop(id) {
    if (id !== loopId || !token || document.hidden) return;
    await refreshList();
    if (id === loopId && token && !document.hidden) {
      listTimer = setTimeout(() => listLoop(id), LIST_EVERY_MS);
    }
  }

  function restartTimers() {
    stopTimers();
    if (!token || document.hidden) return;
    listLoop(loopId).then(refreshThumbs);
    thumbTimer = setInterval(refreshThumbs, 1000);
  }

  // Only while the tab is visible: a hidden tab asks nothing of the server.
  document.addEventListener("visibilitychange", restartTimers);
  setInterval(tick, TICK_MS);

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else showLogin(null);
})();

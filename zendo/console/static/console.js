// The Zendo ops console: admin login (access token in memory, refresh token in the
// HttpOnly cookie of the web-client flow), the ops feed over /ws, a map drawn in SVG,
// the open jobs, a job's dispatch timeline, KPIs and the review of PENDING artisans.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const OPEN = new Set(["SEARCHING", "ASSIGNED", "EN_ROUTE", "ARRIVED", "IN_PROGRESS"]);
const KPI_WINDOW_S = 3600;
const KPI_EVERY_MS = 5000;
const PENDING_EVERY_MS = 30000;
const SIGNED_IN = "zendo-console-signed-in";

const auth = { token: null, user: null, refreshTimer: null };
const state = {
  artisans: new Map(), // id -> {lat, lon, status, specialty, el}
  jobs: new Map(), // id -> job (+ el, row)
  selected: null,
  filter: "",
  ws: null,
  wsAttempt: 0,
  timers: [],
  proj: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// --- auth -----------------------------------------------------------------------

async function authPost(path, body) {
  return fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Zendo-Client": "web" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

function accept(tokens) {
  auth.token = tokens.access_token;
  auth.user = tokens.user;
  sessionStorage.setItem(SIGNED_IN, "1"); // a flag only: the tokens never leave memory
  clearTimeout(auth.refreshTimer);
  const inMs = Math.max(10, tokens.expires_in - 60) * 1000;
  auth.refreshTimer = setTimeout(refresh, inMs);
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "auth", token: auth.token }));
  }
}

async function refresh() {
  const resp = await authPost("/auth/refresh");
  if (!resp.ok) {
    signedOut("Your session ended; sign in again.");
    return false;
  }
  accept(await resp.json());
  return true;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const resp = await authPost("/auth/login", {
    email: $("login-email").value,
    password: $("login-password").value,
  });
  if (!resp.ok) {
    const problem = await resp.json().catch(() => ({}));
    $("login-error").textContent = problem.detail || "Sign-in failed";
    return;
  }
  const tokens = await resp.json();
  if (tokens.user.role !== "ADMIN") {
    await authPost("/auth/logout");
    $("login-error").textContent = "Only ADMIN accounts can use the console.";
    return;
  }
  accept(tokens);
  start();
}

async function logout() {
  await authPost("/auth/logout");
  signedOut("");
}

function signedOut(message) {
  auth.token = null;
  auth.user = null;
  sessionStorage.removeItem(SIGNED_IN);
  clearTimeout(auth.refreshTimer);
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.ws) {
    state.ws.onclose = null;
    state.ws.close();
    state.ws = null;
  }
  $("console").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = message;
}

async function api(path, options = {}, retried = false) {
  const resp = await fetch(path, {
    ...options,
    credentials: "same-origin",
    headers: { ...(options.headers || {}), Authorization: `Bearer ${auth.token}` },
  });
  if (resp.status === 401 && !retried && (await refresh())) return api(path, options, true);
  return resp;
}

// --- the map --------------------------------------------------------------------

function rings(geometry) {
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

async function drawAreas() {
  const resp = await fetch("/console/service-areas.geojson");
  const geo = await resp.json();
  const features = geo.type === "FeatureCollection" ? geo.features : [geo];
  const all = features.flatMap((f) => rings(f.geometry || f)).flat();
  const lons = all.map((p) => p[0]);
  const lats = all.map((p) => p[1]);
  const [minLon, maxLon] = [Math.min(...lons), Math.max(...lons)];
  const [minLat, maxLat] = [Math.min(...lats), Math.max(...lats)];
  const kx = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const scale = 1000 / ((maxLon - minLon) * kx);
  const height = Math.ceil((maxLat - minLat) * scale);
  state.proj = (lat, lon) => [(lon - minLon) * kx * scale, (maxLat - lat) * scale];
  state.home = { x: -10, y: -10, w: 1020, h: height + 20 };
  setView(state.home);
  const layer = $("layer-areas");
  layer.replaceChildren();
  for (const feature of features) {
    const d = rings(feature.geometry || feature).map(pathOf).join(" ");
    layer.append(svgEl("path", { d, class: "area" }));
  }
}

// Wheel to zoom around the pointer, drag to pan, double-click for the whole area.
function setView(view) {
  state.view = view;
  const map = $("map");
  map.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  const k = Math.max(0.15, view.w / state.home.w);
  map.style.setProperty("--r", `${(1.8 * k).toFixed(3)}px`);
  map.style.setProperty("--job", `${(7 * k).toFixed(3)}px`);
}

function toMap(event) {
  const point = new DOMPoint(event.clientX, event.clientY);
  return point.matrixTransform($("map").getScreenCTM().inverse());
}

function setupZoom() {
  const map = $("map");
  map.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const at = toMap(event);
      const v = state.view;
      const zoom = v.w / state.home.w;
      const wanted = Math.min(1.5, Math.max(1 / 64, zoom * Math.exp(event.deltaY * 0.0015)));
      const f = wanted / zoom;
      setView({ x: at.x - (at.x - v.x) * f, y: at.y - (at.y - v.y) * f, w: v.w * f, h: v.h * f });
    },
    { passive: false },
  );
  let drag = null;
  map.addEventListener("pointerdown", (event) => {
    drag = toMap(event);
  });
  window.addEventListener("pointermove", (event) => {
    if (!drag || !(event.buttons & 1)) return;
    const at = toMap(event);
    const v = state.view;
    setView({ ...v, x: v.x - (at.x - drag.x), y: v.y - (at.y - drag.y) });
  });
  window.addEventListener("pointerup", () => {
    drag = null;
  });
  map.addEventListener("dblclick", () => setView(state.home));
}

function pathOf(ring) {
  return (
    ring
      .map((p, i) => {
        const [x, y] = state.proj(p[1], p[0]);
        return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join("") + "Z"
  );
}

function placeArtisan(id, a) {
  const [x, y] = state.proj(a.lat, a.lon);
  if (!a.el) {
    a.el = svgEl("circle", {
      class: "artisan",
      "data-testid": "artisan-marker",
      "data-artisan-id": id,
    });
    $("layer-artisans").append(a.el);
  }
  a.el.setAttribute("cx", x.toFixed(1));
  a.el.setAttribute("cy", y.toFixed(1));
  a.el.setAttribute("data-status", a.status);
  a.el.setAttribute("data-specialty", a.specialty);
  a.el.classList.toggle("off", state.filter !== "" && a.specialty !== state.filter);
}

function upsertArtisan(info) {
  if (info.status !== "ONLINE" && info.status !== "BUSY") {
    const known = state.artisans.get(info.id);
    if (known && known.el) known.el.remove();
    state.artisans.delete(info.id);
    return;
  }
  const a = state.artisans.get(info.id) || {};
  Object.assign(a, { lat: info.lat ?? a.lat, lon: info.lon ?? a.lon, status: info.status });
  a.specialty = info.specialty || a.specialty || "";
  state.artisans.set(info.id, a);
  if (a.lat !== undefined) placeArtisan(info.id, a);
}

function cellColour(cell) {
  // Demand (jobs created in the last 15 minutes) against supply (ONLINE artisans now).
  if (cell.demand === 0) return ["#2e7d32", Math.min(0.5, 0.1 + cell.online * 0.02)];
  if (cell.online === 0) return ["#c62828", 0.7];
  const pressure = cell.demand / cell.online;
  if (pressure < 0.25) return ["#7cb342", 0.45];
  if (pressure < 1) return ["#f9a825", 0.55];
  return ["#c62828", 0.65];
}

function drawCells(cells) {
  const layer = $("layer-cells");
  layer.replaceChildren();
  for (const cell of cells) {
    const d = pathOf(cell.boundary.map(([lat, lon]) => [lon, lat]));
    const [fill, opacity] = cellColour(cell);
    const node = svgEl("path", { d, class: "cell", fill, "fill-opacity": opacity });
    node.append(svgEl("title"));
    node.firstChild.textContent = `${cell.h3}: ${cell.online} ONLINE, ${cell.demand} jobs (15 min)`;
    layer.append(node);
  }
}

// --- jobs -------------------------------------------------------------------------

function shortId(id) {
  return id.slice(0, 8);
}

function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s` : `${Math.round(s / 60)}m`;
}

function upsertJob(job) {
  const known = state.jobs.get(job.id);
  if (!OPEN.has(job.status)) {
    if (known) {
      known.row.remove();
      known.el.remove();
      state.jobs.delete(job.id);
    }
    $("job-count").textContent = `(${state.jobs.size})`;
    return;
  }
  const entry = known || { ...job };
  Object.assign(entry, job);
  if (!entry.row) {
    entry.row = el("tr", { "data-testid": "job-row", "data-intervention-id": job.id });
    entry.row.append(
      el("td", { title: job.id }, shortId(job.id)),
      el("td", {}, job.specialty),
      el("td", { class: "status" }),
      el("td", { class: "age" }),
      el("td"),
    );
    const cancel = el("button", { type: "button", class: "small danger" }, "cancel");
    cancel.addEventListener("click", (e) => {
      e.stopPropagation();
      cancelJob(job.id, cancel);
    });
    entry.row.lastChild.append(cancel);
    entry.row.addEventListener("click", () => select(job.id));
    $("job-rows").prepend(entry.row);
    entry.el = svgEl("rect", { class: "job", "data-testid": "job-marker" });
    entry.el.addEventListener("click", () => select(job.id));
    $("layer-jobs").append(entry.el);
  }
  entry.row.setAttribute("data-status", entry.status);
  entry.row.children[2].textContent = entry.status;
  entry.row.children[3].textContent = age(entry.created_at);
  const [x, y] = state.proj(entry.lat, entry.lon);
  entry.el.setAttribute("x", x.toFixed(1));
  entry.el.setAttribute("y", y.toFixed(1));
  entry.el.setAttribute("data-status", entry.status);
  entry.el.setAttribute("data-intervention-id", entry.id);
  state.jobs.set(job.id, entry);
  $("job-count").textContent = `(${state.jobs.size})`;
}

async function cancelJob(id, button) {
  if (button.dataset.armed !== "1") {
    button.dataset.armed = "1";
    button.textContent = "confirm";
    setTimeout(() => {
      button.dataset.armed = "";
      button.textContent = "cancel";
    }, 3000);
    return;
  }
  const resp = await api(`/interventions/${id}/cancel`, { method: "POST" });
  if (!resp.ok) {
    const problem = await resp.json().catch(() => ({}));
    button.textContent = problem.code || "failed";
  }
}

async function select(id) {
  state.selected = id;
  for (const [jid, job] of state.jobs) {
    job.row.classList.toggle("selected", jid === id);
    job.el.classList.toggle("selected", jid === id);
  }
  await loadTimeline();
}

async function loadTimeline() {
  const id = state.selected;
  if (!id) return;
  const resp = await api(`/admin/interventions/${id}/timeline`);
  if (!resp.ok || id !== state.selected) return;
  const body = await resp.json();
  $("timeline-title").textContent = `${shortId(id)} · ${body.intervention.status}`;
  const list = $("timeline");
  list.setAttribute("data-intervention-id", id);
  list.replaceChildren(
    ...body.entries.map((e) => {
      const item = el("li", { "data-kind": e.kind });
      item.append(el("time", {}, new Date(e.at).toLocaleTimeString()));
      item.append(document.createTextNode(describe(e)));
      return item;
    }),
  );
}

function describe(e) {
  if (e.kind === "created") return `created (${e.to_status}) by ${e.actor_role}`;
  if (e.kind === "status") return `${e.from_status} → ${e.to_status} by ${e.actor_role}`;
  const who = `artisan ${shortId(e.artisan_id)} at ${e.distance_km.toFixed(2)} km`;
  return `${e.kind.replace("offer.", "offer ")} · ${who}`;
}

let timelineSoon = null;
function timelineChanged(id) {
  if (id !== state.selected || timelineSoon) return;
  timelineSoon = setTimeout(() => {
    timelineSoon = null;
    loadTimeline();
  }, 150);
}

// --- the ops feed -------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: auth.token }));
  ws.onmessage = (msg) => onFrame(JSON.parse(msg.data));
  ws.onclose = () => {
    $("feed-state").textContent = "reconnecting…";
    $("feed-state").classList.remove("live");
    if (state.ws !== ws || !auth.token) return;
    // The project's reconnect rule: a random wait in [d/2, d], d = min(30 s, 0.5 s × 2^n).
    const d = Math.min(30000, 500 * 2 ** state.wsAttempt++);
    setTimeout(connect, d / 2 + (Math.random() * d) / 2);
  };
}

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      state.wsAttempt = 0;
      state.ws.send(JSON.stringify({ type: "ops.subscribe" }));
      break;
    case "ops.snapshot":
      applySnapshot(frame);
      $("feed-state").textContent = "live";
      $("feed-state").classList.add("live");
      break;
    case "ops.event":
      frame.events.forEach(applyEvent);
      showCounts();
      break;
    case "error":
      $("feed-state").textContent = `error: ${frame.code}`;
      break;
    default:
      break;
  }
}

function applySnapshot(frame) {
  for (const a of state.artisans.values()) if (a.el) a.el.remove();
  for (const j of state.jobs.values()) {
    j.row.remove();
    j.el.remove();
  }
  state.artisans.clear();
  state.jobs.clear();
  frame.artisans.forEach(upsertArtisan);
  frame.jobs
    .slice()
    .sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at))
    .forEach(upsertJob);
  drawCells(frame.cells);
  showCounts();
}

function applyEvent(e) {
  if (e.kind === "job.created" || e.kind === "job.status") {
    upsertJob(e.job);
    timelineChanged(e.job.id);
  } else if (e.kind.startsWith("offer.")) {
    timelineChanged(e.intervention_id);
  } else if (e.kind === "artisan.status") {
    upsertArtisan(e.artisan);
  } else if (e.kind === "artisan.positions") {
    for (const [id, lat, lon] of e.artisans) {
      const a = state.artisans.get(id);
      if (a) {
        a.lat = lat;
        a.lon = lon;
        placeArtisan(id, a);
      }
    }
  } else if (e.kind === "cells") {
    drawCells(e.cells);
  }
}

function showCounts() {
  let online = 0;
  let busy = 0;
  for (const a of state.artisans.values()) {
    if (a.status === "ONLINE") online++;
    else busy++;
  }
  $("counts").textContent = ` · on the map: ${online} ONLINE, ${busy} BUSY, ${state.jobs.size} open jobs`;
}

// --- KPIs and artisan review ----------------------------------------------------------

const KPI_TILES = [
  ["jobs_created", "jobs created", (t) => t.jobs_created],
  ["jobs_assigned", "assigned", (t) => t.jobs_assigned],
  ["jobs_unfulfilled", "UNFULFILLED", (t) => t.jobs_unfulfilled],
  ["first_offer_p50", "first offer p50", (t) => secs(t.time_to_first_offer_s.p50)],
  ["first_offer_p90", "first offer p90", (t) => secs(t.time_to_first_offer_s.p90)],
  ["assign_p50", "assign p50", (t) => secs(t.time_to_assign_s.p50)],
  ["assign_p90", "assign p90", (t) => secs(t.time_to_assign_s.p90)],
  ["acceptance_rate", "acceptance", (t) => pct(t.acceptance_rate)],
  ["artisans_online", "artisans ONLINE", (t) => t.artisans_online],
  ["artisans_busy", "artisans BUSY", (t) => t.artisans_busy],
];

function secs(v) {
  return v === null ? "–" : `${v.toFixed(v < 10 ? 2 : 0)} s`;
}

function pct(v) {
  return v === null ? "–" : `${Math.round(v * 100)} %`;
}

async function loadKpis() {
  const resp = await api(`/admin/kpis?window_s=${KPI_WINDOW_S}`);
  if (!resp.ok) return;
  const body = await resp.json();
  $("kpis").replaceChildren(
    ...KPI_TILES.map(([name, label, value]) => {
      const tile = el("div", { class: "kpi", "data-testid": `kpi-${name}` });
      tile.append(el("b", {}, String(value(body.total))), el("span", {}, label));
      return tile;
    }),
  );
  const table = $("kpi-specialties");
  const head = el("tr");
  ["specialty", "created", "assigned", "UNF", "accept", "ONLINE", "BUSY"].forEach((h) =>
    head.append(el("th", {}, h)),
  );
  const rows = Object.entries(body.by_specialty).map(([name, t]) => {
    const row = el("tr", { "data-specialty": name });
    [name, t.jobs_created, t.jobs_assigned, t.jobs_unfulfilled, pct(t.acceptance_rate),
      t.artisans_online, t.artisans_busy].forEach((v) => row.append(el("td", {}, String(v))));
    return row;
  });
  table.replaceChildren(head, ...rows);
}

async function loadPending() {
  const resp = await api("/admin/artisans?status=PENDING&limit=20");
  if (!resp.ok) return;
  const artisans = await resp.json();
  $("pending").replaceChildren(
    ...artisans.map((a) => {
      const item = el("li", { "data-testid": "pending-artisan", "data-artisan-id": a.user_id });
      item.append(el("div", {}, `${a.email} · ${a.specialty}`));
      const docs = el("div");
      for (const d of a.documents || []) {
        docs.append(el("a", { href: d.download_url, target: "_blank", rel: "noopener" }, d.kind));
      }
      if (!docs.childNodes.length) docs.textContent = "no documents uploaded";
      const reason = el("input", { placeholder: "reason to reject", maxlength: "1000" });
      const verify = el("button", { type: "button", class: "small" }, "verify");
      const reject = el("button", { type: "button", class: "small danger" }, "reject");
      verify.addEventListener("click", () => review(a.user_id, "verify"));
      reject.addEventListener("click", () => review(a.user_id, "reject", reason));
      item.append(docs, verify, reason, reject);
      return item;
    }),
  );
}

async function review(id, action, reasonInput) {
  const options = { method: "POST" };
  if (action === "reject") {
    const reason = reasonInput.value.trim();
    if (!reason) {
      reasonInput.focus();
      return;
    }
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify({ reason });
  }
  await api(`/admin/artisans/${id}/${action}`, options);
  loadPending();
}

// --- start ------------------------------------------------------------------------------

async function start() {
  $("login").classList.add("hidden");
  $("console").classList.remove("hidden");
  $("who").textContent = auth.user.email;
  if (!state.proj) await drawAreas();
  connect();
  loadKpis();
  loadPending();
  state.timers.push(setInterval(loadKpis, KPI_EVERY_MS));
  state.timers.push(setInterval(loadPending, PENDING_EVERY_MS));
  state.timers.push(
    setInterval(() => {
      for (const job of state.jobs.values()) job.row.children[3].textContent = age(job.created_at);
    }, 1000),
  );
}

function setup() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  setupZoom();
  const filter = $("specialty-filter");
  fetch("/specialties")
    .then((r) => r.json())
    .then((names) => names.forEach((n) => filter.append(el("option", { value: n }, n))));
  filter.addEventListener("change", () => {
    state.filter = filter.value;
    for (const a of state.artisans.values()) {
      if (a.el) a.el.classList.toggle("off", state.filter !== "" && a.specialty !== state.filter);
    }
  });
  $("show-cells").addEventListener("change", (e) => {
    $("layer-cells").classList.toggle("off", !e.target.checked);
  });
  // A reload of this tab keeps the session while the refresh cookie is valid.
  if (!sessionStorage.getItem(SIGNED_IN)) return;
  authPost("/auth/refresh").then(async (resp) => {
    if (!resp.ok) return;
    const tokens = await resp.json();
    if (tokens.user && tokens.user.role === "ADMIN") {
      accept(tokens);
      start();
    }
  });
}

document.addEventListener("DOMContentLoaded", setup);

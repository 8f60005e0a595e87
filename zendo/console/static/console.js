// The Zendo ops console: admin login (access token in memory, refresh token in the
// HttpOnly cookie of the web-client flow), the ops feed over /ws, and the start-up.
// The map is console-map.js; the jobs, timeline, KPIs and reviews console-panels.js
// (classic scripts sharing this file's globals, run in order before DOMContentLoaded).
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

// The ops console's panels: open jobs, a job's dispatch log, KPIs, artisan review.
"use strict";

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
      const uploaded = (a.documents || []).map((d) => d.kind);
      if (uploaded.length) {
        // Links are short-lived and their minting is audited: asked for on demand.
        const open = el("button", { type: "button", class: "small" }, "documents");
        open.addEventListener("click", () => showDocuments(a.user_id, docs));
        docs.append(el("span", {}, `${uploaded.join(", ")} `), open);
      } else {
        docs.textContent = "no documents uploaded";
      }
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

async function showDocuments(id, docs) {
  const resp = await api(`/admin/artisans/${id}/documents`);
  if (!resp.ok) return;
  const links = (await resp.json()).map((d) =>
    el("a", { href: d.download_url, target: "_blank", rel: "noopener" }, d.kind),
  );
  docs.replaceChildren(...links);
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

// The ops console's map: service areas, artisans, jobs' cells, zoom and pan (SVG).
"use strict";

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

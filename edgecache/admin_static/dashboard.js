// The edgecache dashboard: polls /stats and draws the figures as inline SVG.
// Keys and paths come from client requests, so they are only ever set as textContent.
"use strict";

const REFRESH_MS = 3000;
const SVG_NS = "http://www.w3.org/2000/svg";
const OUTCOMES = ["hit", "stale", "revalidated", "miss", "bypass", "error"];
const COLORS = {};
for (const name of OUTCOMES) {
  COLORS[name] = getComputedStyle(document.documentElement).getPropertyValue("--" + name).trim();
}

function $(id) { return document.getElementById(id); }

function number(value, digits) {
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return ["–", ""];
  if (seconds < 1) return [number(seconds * 1000, seconds < 0.01 ? 1 : 0), "ms"];
  if (seconds < 120) return [number(seconds, seconds < 10 ? 1 : 0), "s"];
  if (seconds < 7200) return [number(seconds / 60, 1), "min"];
  return [number(seconds / 3600, 1), "h"];
}

function bytes(value) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let index = 0;
  while (value >= 1024 && index < units.length - 1) { value /= 1024; index += 1; }
  return number(value, index === 0 ? 0 : 1) + " " + units[index];
}

function setBig(id, value, unit) {
  const element = $(id);
  element.replaceChildren(document.createTextNode(value));
  if (unit) {
    const span = document.createElement("span");
    span.className = "unit";
    span.textContent = unit;
    element.appendChild(span);
  }
}

function setNoData(id) {
  const element = $(id);
  const span = document.createElement("span");
  span.className = "nodata";
  span.textContent = "no data";
  element.replaceChildren(span);
}

function svgElement(name, attributes, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// Draw areas or lines over a time axis; `layers` is a list of {name, values, color}.
function drawTimeChart(svg, layers, options) {
  const width = svg.clientWidth || 600;
  const height = svg.clientHeight || 190;
  const left = 44, right = 8, top = 8, bottom = 20;
  const plotWidth = width - left - right, plotHeight = height - top - bottom;
  const count = layers.length ? layers[0].values.length : 0;
  const stacked = layers.map(() => new Array(count).fill(0));
  for (let i = 0; i < count; i += 1) {
    let sum = 0;
    layers.forEach((layer, index) => {
      sum += options.stack ? (layer.values[i] || 0) : 0;
      stacked[index][i] = options.stack ? sum : layer.values[i];
    });
  }
  let yMax = options.yMax;
  if (yMax === undefined) {
    yMax = Math.max(1, ...stacked.flat().filter((value) => value !== null));
    const magnitude = Math.pow(10, Math.floor(Math.log10(yMax)));
    yMax = Math.ceil(yMax / magnitude) * magnitude;
  }
  const x = (i) => left + (count <= 1 ? 0 : (i / (count - 1)) * plotWidth);
  const y = (value) => top + plotHeight - (value / yMax) * plotHeight;
  const children = [];
  for (let step = 0; step <= 4; step += 1) {
    const value = (yMax * step) / 4;
    children.push(svgElement("line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    children.push(svgElement("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, options.format(value)));
  }
  for (const minutes of [15, 10, 5, 0]) {
    const i = count - 1 - (minutes * 60) / options.bucketSeconds;
    if (i < 0) continue;
    let anchor = "middle";
    if (minutes === 15) anchor = "start";
    if (minutes === 0) anchor = "end";
    children.push(svgElement("text", { x: x(i), y: height - 4, "text-anchor": anchor }, minutes ? `−${minutes} min` : "now"));
  }
  for (let index = layers.length - 1; index >= 0; index -= 1) {
    const points = [];
    for (let i = 0; i < count; i += 1) {
      if (stacked[index][i] !== null) points.push(`${x(i).toFixed(1)},${y(stacked[index][i]).toFixed(1)}`);
    }
    if (!points.length) continue;
    const color = layers[index].color;
    if (options.stack) {
      const below = index > 0 ? stacked[index - 1] : new Array(count).fill(0);
      const base = [];
      for (let i = count - 1; i >= 0; i -= 1) base.push(`${x(i).toFixed(1)},${y(below[i]).toFixed(1)}`);
      children.push(svgElement("polygon", { class: "series", points: points.concat(base).join(" "), fill: color, "fill-opacity": 0.85 }));
    } else {
      children.push(svgElement("polyline", { class: "series", points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2 }));
      // A bucket between two empty ones has no line to show it, so it gets a dot.
      for (let i = 0; i < count; i += 1) {
        const value = stacked[index][i];
        if (value !== null && (i === 0 || stacked[index][i - 1] === null) && (i === count - 1 || stacked[index][i + 1] === null)) {
          children.push(svgElement("circle", { class: "series", cx: x(i), cy: y(value), r: 3, fill: color }));
        }
      }
    }
  }
  svg.replaceChildren(...children);
}

// Draw labelled vertical bars; `bars` is a list of {label, value, color}.
function drawBars(svg, bars, format) {
  const width = svg.clientWidth || 300;
  const height = svg.clientHeight || 150;
  const top = 18, bottom = 20, gap = 6;
  const yMax = Math.max(...bars.map((bar) => bar.value), 0) || 1;
  const barWidth = Math.max(4, (width - gap * (bars.length + 1)) / bars.length);
  const children = [];
  bars.forEach((bar, index) => {
    const barHeight = ((height - top - bottom) * bar.value) / yMax;
    const x = gap + index * (barWidth + gap);
    const y = height - bottom - barHeight;
    children.push(svgElement("rect", { class: "series", x, y, width: barWidth, height: Math.max(barHeight, 1), rx: 2, fill: bar.color }));
    children.push(svgElement("text", { x: x + barWidth / 2, y: height - 5, "text-anchor": "middle" }, bar.label));
    if (bar.value) children.push(svgElement("text", { x: x + barWidth / 2, y: y - 4, "text-anchor": "middle" }, format(bar.value)));
  });
  svg.replaceChildren(...children);
}

function fillFigures(id, rows) {
  const list = $(id);
  const children = [];
  for (const [name, value] of rows) {
    children.push(Object.assign(document.createElement("dt"), { textContent: name }));
    children.push(Object.assign(document.createElement("dd"), { textContent: value }));
  }
  list.replaceChildren(...children);
}

function fillTop(id, items) {
  const body = $(id).tBodies[0];
  const rows = items.slice(0, 8).map((item) => {
    const row = document.createElement("tr");
    const key = Object.assign(document.createElement("td"), { textContent: item.key, title: item.key });
    const count = Object.assign(document.createElement("td"), { textContent: number(item.count, 0) + (item.error ? " ±" + item.error : "") });
    row.append(key, count);
    return row;
  });
  if (!rows.length) {
    const row = document.createElement("tr");
    row.append(Object.assign(document.createElement("td"), { textContent: "none yet", className: "empty", colSpan: 2 }));
    rows.push(row);
  }
  body.replaceChildren(...rows);
}

function quantileText(figures) {
  return ["p50", "p90", "p99"].filter((name) => figures && figures[name] !== undefined)
    .map((name) => name + " " + duration(figures[name]).join(" ")).join(" · ");
}

function renderTiles(stats) {
  const minute = stats.rolling["1m"];
  setBig("rate", number(minute.requests_per_second.total, 1), "req/s");
  $("rate-sub").textContent = `last minute · ${number(stats.requests.total, 0)} since reset`;
  if (minute.hit_ratio === null) setNoData("ratio");
  else setBig("ratio", number(minute.hit_ratio * 100, 1), "%");
  // A ratio is null without lookups, so it shows as "–" instead of 0 %.
  const percent = (ratio) => (ratio === null ? "–" : number(ratio * 100, 1) + " %");
  $("ratio-sub").textContent = `last minute · 5 min ${percent(stats.rolling["5m"].hit_ratio)} · total ${percent(stats.hit_ratio)}`;
  const origin = stats.origin.fetch_seconds;
  setBig("latency", ...duration(origin.p90));
  $("latency-sub").textContent = quantileText(origin);
  const age = stats.staleness.served_age_seconds;
  setBig("age", ...duration(age.p90));
  $("age-sub").textContent = `p50 ${duration(age.p50).join(" ")} · max ${duration(age.max).join(" ")} · ` +
    `${number(stats.staleness.stale_served, 0)} served stale`;
  renderStalenessTiles(stats.staleness);
}

// Inventory lag and known-stale counts are present only when edgecache measures them.
function renderStalenessTiles(staleness) {
  const lag = staleness.inventory_lag_seconds;
  const known = knownStale(staleness);
  if (known !== null && known.total === 0) {
    // The lag is measured only on known-stale responses; with none, quantiles of 0 would mislead.
    $("lag").textContent = "none";
    $("lag-sub").textContent = "no page served after a newer inventory event";
  } else if (lag === undefined || lag === null) {
    setNoData("lag");
    $("lag-sub").textContent = "not measured";
  } else if (typeof lag === "number") {
    setBig("lag", ...duration(lag));
    $("lag-sub").textContent = "";
  } else {
    setBig("lag", ...duration(lag.p90));
    $("lag-sub").textContent = quantileText(lag);
  }
  if (known === null) {
    setNoData("known-stale");
    $("known-stale-sub").textContent = "not measured";
  } else {
    setBig("known-stale", number(known.total, 0), "responses");
    $("known-stale-sub").textContent = known.parts.map(([name, count]) => `${name.replaceAll("_", " ")} ${number(count, 0)}`).join(" · ");
  }
}

function knownStale(staleness) {
  const value = staleness.known_stale ?? staleness.known_stale_served;
  if (value === undefined || value === null) return null;
  if (typeof value === "number") return { total: value, parts: [] };
  const parts = Object.entries(value).filter(([name, count]) => typeof count === "number" && name !== "total");
  const total = typeof value.total === "number" ? value.total : parts.reduce((sum, [, count]) => sum + count, 0);
  return { total, parts };
}

function renderCharts(stats) {
  const series = stats.rolling.series;
  const covered = series.covered_seconds;
  const rate = (counts) => counts.map((count, i) => (covered[i] > 0 ? count / covered[i] : 0));
  const layers = OUTCOMES.map((name) => ({ name, values: rate(series.counts[name]), color: COLORS[name] }));
  drawTimeChart($("chart-rates"), layers, { stack: true, bucketSeconds: series.bucket_seconds, format: (v) => number(v, v < 10 ? 1 : 0) });
  const ratio = series.counts.lookups.map((lookups, i) => (lookups ? (series.counts.hit[i] + series.counts.stale[i]) / lookups : null));
  drawTimeChart($("chart-ratio"), [{ name: "hit ratio", values: ratio, color: COLORS.hit }],
    { stack: false, yMax: 1, bucketSeconds: series.bucket_seconds, format: (v) => number(v * 100, 0) + " %" });
  const buckets = stats.staleness.served_age_seconds.buckets || [];
  let lower = 0;
  const ageBars = buckets.map((bucket) => {
    const label = bucket.le === "+Inf" ? `>${duration(lower).join("")}` : `≤${duration(bucket.le).join("")}`;
    if (bucket.le !== "+Inf") lower = bucket.le;
    return { label, value: bucket.count, color: COLORS.hit };
  }).filter((bar, index, all) => bar.value || all.slice(index + 1).some((later) => later.value) || index < 6);
  drawBars($("chart-age"), ageBars, (v) => number(v, 0));
  const origin = stats.origin.fetch_seconds;
  drawBars($("chart-latency"), ["p50", "p90", "p99"].map((name) => ({ label: name, value: origin[name], color: COLORS.miss })),
    (v) => duration(v).join(" "));
}

function renderPanels(stats) {
  const cache = stats.cache;
  const share = cache.max_bytes ? cache.bytes / cache.max_bytes : 0;
  // A non-empty cache keeps a visible sliver, however small its share of the limit.
  $("fill-bar").style.width = cache.bytes ? `max(3px, ${(share * 100).toFixed(2)}%)` : "0";
  fillFigures("fill", [
    ["entries", number(cache.entries, 0)],
    ["bytes", `${bytes(cache.bytes)} of ${bytes(cache.max_bytes)} (${number(share * 100, 1)} %)`],
    ["evictions", number(cache.evictions, 0)],
    ["variant evictions", number(cache.variant_evictions, 0)],
  ]);
  renderScale(stats);
  const origin = stats.origin;
  $("origin-sub").textContent = `${number(origin.requests, 0)} requests · ${number(origin.errors, 0)} errors · ${number(origin.coalesced, 0)} coalesced`;
  fillTop("top-bypassed", stats.top.bypassed);
  fillTop("top-fetched", stats.top.origin_fetches);
  fillTop("top-requested", stats.top.requested);
}

// Shown only when /stats has shared tier figures (cache.shared_url) or worker figures (serve --workers).
function renderScale(stats) {
  const rows = [];
  const shared = stats.shared;
  if (shared && shared.state !== "off") {
    rows.push(["shared tier", shared.state]);
    rows.push(["Redis lookups", `${number(shared.hits, 0)} hits · ${number(shared.misses, 0)} misses`]);
    rows.push(["Redis failures", number(shared.failures, 0)]);
  }
  if (stats.workers) {
    const workers = stats.workers;
    rows.push(["workers", `${number(workers.answered, 0)} of ${number(workers.count, 0)} responding · ` +
                          `${number(workers.restarts, 0)} restarts`]);
  }
  $("scale-panel").hidden = rows.length === 0;
  fillFigures("scale", rows);
}

function renderLegend() {
  const items = OUTCOMES.map((name) => {
    const item = Object.assign(document.createElement("li"), { textContent: name });
    item.style.setProperty("--swatch", COLORS[name]);
    return item;
  });
  $("legend-rates").replaceChildren(...items);
}

let latest = null;

async function refresh() {
  try {
    const response = await fetch("/stats", { cache: "no-store" });
    if (!response.ok) throw new Error(`/stats returned status ${response.status}`);
    latest = await response.json();
    render(latest);
    const status = $("status");
    status.className = "status live";
    status.textContent = `up ${duration(latest.uptime_seconds).join(" ")} · updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    const status = $("status");
    status.className = "status down";
    status.textContent = `cannot read /stats: ${error.message}; retrying`;
  }
  setTimeout(refresh, REFRESH_MS);
}

function render(stats) {
  renderTiles(stats);
  renderCharts(stats);
  renderPanels(stats);
  document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
}

window.addEventListener("resize", () => { if (latest) render(latest); });
renderLegend();
refresh();

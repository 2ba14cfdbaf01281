/* The dashboard: reads the report API (/sites, /reports/metrics, /reports/timeseries,
   /reports/breakdown, /reports/live, /filtered-traffic) from the browser and draws it. No build
   step: this file is served as it is. The view (site, dates, zone, filters) lives in the
   address's query string, so a view can be reloaded and shared.

   What is shown is listed once, in TILES and PANELS below: a tile per metric of
   /reports/metrics, a panel per dimension of /reports/breakdown. A tile appears only when the
   API answers its metric; a panel is listed only once the API accepts its dimension. */
"use strict";

const count = (n) => n.toLocaleString("en-US");

// The tiles: `metric` names a field of /reports/metrics, {"value": x, "previous": y}, and
// `format` writes its values (a rate or a duration brings its own format).
const TILES = [
  { metric: "visitors", label: "Visitors", format: count },
  { metric: "views", label: "Views", format: count },
];

// The panels: `dimension` is a /reports/breakdown dimension ("property:" + a key the viewer
// types, for `keyed`); a row's value filters the whole dashboard by that dimension.
const PANELS = [
  { id: "pages", title: "Top pages", dimension: "path", label: "Page" },
  { id: "referrers", title: "Referrers", dimension: "referrer_host", label: "Referrer" },
  { id: "events", title: "Event types", dimension: "event_type", label: "Event" },
  { id: "properties", title: "Properties", dimension: "property:", label: "Property", keyed: true },
];

// The number columns of the tables: fields of /reports/breakdown's rows, each shown when the
// API's rows have it. The bars behind the values follow the first.
const COLUMNS = [
  { field: "visitors", label: "Visitors" },
  { field: "views", label: "Views" },
];

// The lines of the chart: fields of each /reports/timeseries bucket.
const SERIES = [
  { field: "visitors", label: "Visitors", stroke: "#0b4fa8", fill: "rgba(11, 79, 168, .08)" },
  { field: "views", label: "Views", stroke: "#c2410c" },
];

// The steps between the labels of a time axis by days or longer: never between two days.
const DAY_STEPS = [1, 2, 7, 14, 30, 91, 182, 365].map((n) => n * 86400);
const TOKEN_KEY = "analytics.read_token";
const FEED_LENGTH = 20;
const LIVE_RETRY_MS = 5000;
const $ = (id) => document.getElementById(id);

const state = { site: "", range: "30d", start: "", end: "", zone: "", prop: "screen", filters: [] };
let sites = [];
let chart = null;
let generation = 0;
let live = null;

/* ---- the view in the address ---- */

function readAddress() {
  const q = new URLSearchParams(location.search);
  state.site = q.get("site") || "";
  state.start = q.get("start_date") || "";
  state.end = q.get("end_date") || "";
  state.range = state.start && state.end ? "custom" : q.get("range") || "30d";
  state.zone = q.get("timezone") || "";
  state.prop = q.get("prop") || "screen";
  try {
    const filters = JSON.parse(q.get("filters") || "[]");
    state.filters = Array.isArray(filters) ? filters : [];
  } catch {
    state.filters = [];
  }
}

function writeAddress() {
  const q = new URLSearchParams();
  if (state.site) q.set("site", state.site);
  if (state.range === "custom") {
    q.set("start_date", state.start);
    q.set("end_date", state.end);
  } else {
    q.set("range", state.range);
  }
  if (state.zone) q.set("timezone", state.zone);
  if (state.filters.length) q.set("filters", JSON.stringify(state.filters));
  if (state.prop !== "screen") q.set("prop", state.prop);
  const address = "?" + q.toString();
  if (address !== location.search) history.pushState(null, "", address);
}

/* ---- the API ---- */

class NeedsToken extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function authHeaders() {
  return token() ? { Authorization: "Bearer " + token() } : {};
}

async function api(path, params) {
  const answer = await fetch(path + "?" + new URLSearchParams(params), { headers: authHeaders() });
  if (answer.status === 401) throw new NeedsToken(path + " asks for another read token");
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.message || answer.status + " " + answer.statusText);
  return body;
}

function scopeParams() {
  const params = { site_id: state.site };
  if (state.range === "custom") {
    params.start_date = state.start;
    params.end_date = state.end;
  } else {
    params.range = state.range;
  }
  if (state.zone) params.timezone = state.zone;
  if (state.filters.length) params.filters = JSON.stringify(state.filters);
  return params;
}

let asking = null;

/* Ask for a read token (once, however many reports answered 401) and keep it for the tab. */
function askForToken() {
  if (asking) return asking;
  const dialog = $("token-dialog");
  if (token()) $("token-reason").textContent = "That token was refused. Enter a read token.";
  sessionStorage.removeItem(TOKEN_KEY);
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const given = $("token").value.trim();
        if (given) sessionStorage.setItem(TOKEN_KEY, given);
        $("token").value = "";
        asking = null;
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
  });
  return asking;
}

/* ---- loading ---- */

async function loadSites() {
  sites = [];
  let page = "";
  do {
    const body = await api("/sites", page ? { page_token: page } : {});
    sites.push(...body.sites);
    page = body.next_page_token;
  } while (page);
}

async function start() {
  readAddress();
  buildZones();
  try {
    await loadSites();
  } catch (error) {
    // A token that reads reports may not list sites: then the address names the site.
    if (error instanceof NeedsToken && !token()) {
      await askForToken();
      return start();
    }
    setStatus("Could not list the sites: " + error.message, true);
  }
  if (!state.site && sites.length) state.site = sites[0].site_id;
  if (!state.site) {
    setStatus("No site yet: send an event, or register a site with POST /sites.");
    return;
  }
  if (!sites.some((s) => s.site_id === state.site)) sites.push({ site_id: state.site, name: state.site });
  fillControls();
  await load();
}

async function load() {
  const mine = ++generation;
  fillControls();
  renderChips();
  setStatus("Loading…");
  try {
    const metrics = await api("/reports/metrics", { ...scopeParams(), compare: "true" });
    if (mine !== generation) return;
    renderTiles(metrics);
    const period = metrics.period;
    const [series, breakdowns, filtered] = await Promise.all([
      api("/reports/timeseries", { ...scopeParams(), interval: intervalFor(period) }),
      Promise.all(PANELS.map((panel) => loadPanel(panel))),
      loadFiltered(period),
    ]);
    if (mine !== generation) return;
    renderChart(series);
    PANELS.forEach((panel, i) => renderPanel(panel, breakdowns[i]));
    renderFiltered(filtered);
    setStatus(describePeriod(period));
    openLive();
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof NeedsToken) {
      await askForToken();
      return load();
    }
    setStatus(error.message, true);
  }
}

function panelDimension(panel) {
  return panel.keyed ? panel.dimension + state.prop : panel.dimension;
}

function loadPanel(panel) {
  if (panel.keyed && !state.prop) return Promise.resolve(null);
  return api("/reports/breakdown", { ...scopeParams(), dimension: panelDimension(panel), limit: "10" });
}

function loadFiltered(period) {
  // The filtered-traffic report covers at most 366 days: the last ones of a longer period.
  const last = new Date(period.end_date + "T00:00:00Z");
  const first = new Date(Math.max(Date.parse(period.start_date + "T00:00:00Z"), last - 365 * 864e5));
  const day = (d) => d.toISOString().slice(0, 10);
  return api("/filtered-traffic", { site_id: state.site, start_date: day(first), end_date: day(last) });
}

function days(period) {
  return (Date.parse(period.end_date) - Date.parse(period.start_date)) / 864e5 + 1;
}

/* The finest interval that keeps the series readable and within the API's bounds. */
function intervalFor(period) {
  const n = days(period);
  if (n <= 2) return "hour";
  if (n <= 400) return "day";
  if (n <= 7000) return "week";
  return "month";
}

function describePeriod(period) {
  const { start_date: first, end_date: last, timezone } = period;
  return (first === last ? first : first + " to " + last) + " (" + timezone + ")";
}

/* ---- rendering ---- */

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

function renderTiles(metrics) {
  const tiles = TILES.filter((tile) => metrics[tile.metric] !== undefined).map((tile) => {
    const { value, previous } = metrics[tile.metric];
    const change = el("p", { className: "change" });
    if (previous === undefined) {
      change.textContent = "";
    } else if (previous === 0) {
      change.textContent = value === 0 ? "no change" : "new (none before)";
    } else {
      const percent = Math.round(((value - previous) / previous) * 100);
      const arrow = percent > 0 ? "▲ +" : percent < 0 ? "▼ " : "";
      change.textContent = arrow + percent + "% vs " + tile.format(previous);
      change.classList.add(percent > 0 ? "up" : percent < 0 ? "down" : "same");
    }
    const node = el(
      "article",
      { className: "tile" },
      el("h2", { textContent: tile.label }),
      el("p", { className: "value", textContent: tile.format(value) }),
      change,
    );
    node.dataset.metric = tile.metric;
    return node;
  });
  $("tiles").replaceChildren(...tiles);
}

function zoneOfView() {
  const site = sites.find((s) => s.site_id === state.site);
  return state.zone || (site && site.time_zone) || "UTC";
}

function renderChart(series) {
  const xs = series.buckets.map((b) => Date.parse(b.start) / 1000);
  const data = [xs, ...SERIES.map((s) => series.buckets.map((b) => b[s.field]))];
  const box = $("chart");
  const zone = series.period.timezone;
  const options = {
    width: Math.max(box.clientWidth, 280),
    height: 260,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
    scales: { y: { range: (u, min, max) => [0, Math.max(max, 1)] } },
    axes: [
      series.interval === "hour" ? {} : { incrs: DAY_STEPS },
      { values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? count(t) : "")) },
    ],
    series: [
      { label: series.interval === "hour" ? "Hour" : "Day" },
      ...SERIES.map((s) => ({
        label: s.label,
        stroke: s.stroke,
        fill: s.fill,
        width: 2,
        points: { show: xs.length <= 60 },
      })),
    ],
  };
  if (chart) chart.destroy();
  box.replaceChildren();
  chart = new uPlot(options, data, box);
  window.dashboard.chart = chart;
}

function renderPanel(panel, result) {
  let section = $("panel-" + panel.id);
  if (!section) {
    section = el("section", { className: "card", id: "panel-" + panel.id });
    section.setAttribute("aria-labelledby", "panel-" + panel.id + "-title");
    const title = el("h2", { id: "panel-" + panel.id + "-title", textContent: panel.title });
    const head = el("div", { className: "panel-head" }, title);
    if (panel.keyed) head.append(propertyKeyInput());
    section.append(head, el("div", { className: "rows" }));
    $("panels").append(section);
  }
  const rows = section.querySelector(".rows");
  if (!result || !result.rows.length) {
    const note = result ? "Nothing in this period." : "Type a property key.";
    rows.replaceChildren(el("p", { className: "empty", textContent: note }));
    return;
  }
  const dimension = result.dimension;
  const columns = COLUMNS.filter((c) => result.rows[0][c.field] !== undefined);
  const top = Math.max(...result.rows.map((r) => r[columns[0].field]), 1);
  const body = result.rows.map((row) => {
    const fill = el("span", { className: "bar-fill" });
    fill.style.width = (100 * row[columns[0].field]) / top + "%";
    const shown = row.value === "" ? "(none)" : row.value;
    const button = el("button", { type: "button", textContent: shown, title: "Filter by " + shown });
    button.addEventListener("click", () => addFilter(dimension, row.value));
    const numbers = columns.map((c) => el("td", { textContent: count(row[c.field]) }));
    return el("tr", {}, el("td", { className: "name" }, fill, button), ...numbers);
  });
  const head = el(
    "tr",
    {},
    el("th", { scope: "col", textContent: labelOf(dimension) }),
    ...columns.map((c) => el("th", { scope: "col", textContent: c.label })),
  );
  const table = el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
  const shown = result.rows.length;
  const more = result.total_rows > shown ? "Top " + shown + " of " + count(result.total_rows) + "." : "";
  rows.replaceChildren(table, ...(more ? [el("p", { className: "hint", textContent: more })] : []));
}

function propertyKeyInput() {
  const input = el("input", { id: "prop-key", value: state.prop, spellcheck: false });
  input.setAttribute("list", "prop-keys");
  const known = ["screen", "utm_source", "utm_medium", "utm_campaign"];
  const keys = el("datalist", { id: "prop-keys" }, ...known.map((k) => el("option", { value: k })));
  input.addEventListener("change", () => {
    state.prop = input.value.trim();
    writeAddress();
    load();
  });
  return el("label", {}, "Key ", input, keys);
}

function renderFiltered(report) {
  if (!report.days.length) {
    const note = "Nothing dropped from " + report.start_date + " to " + report.end_date + ".";
    $("filtered").replaceChildren(el("p", { className: "empty", textContent: note }));
    return;
  }
  const heading = (text, className = "") => el("th", { scope: "col", textContent: text, className });
  const head = el("tr", {}, heading("Day", "text"), heading("Reason", "text"), heading("Events"));
  const rows = report.days.map((d) =>
    el(
      "tr",
      {},
      el("td", { textContent: d.day }),
      el("td", { className: "text", textContent: d.reason.replaceAll("_", " ") }),
      el("td", { textContent: count(d.count) }),
    ),
  );
  const total = el(
    "tr",
    {},
    el("th", { scope: "row", textContent: "Total" }),
    el("td"),
    el("td", { textContent: count(report.total) }),
  );
  const table = el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows), el("tfoot", {}, total));
  $("filtered").replaceChildren(table);
}

/* ---- filters ---- */

function labelOf(dimension) {
  const panel = PANELS.find((p) => p.dimension === dimension);
  if (panel) return panel.label;
  if (dimension.startsWith("property:")) return dimension.slice("property:".length);
  return dimension;
}

function addFilter(dimension, value) {
  state.filters = state.filters.filter((f) => f.dimension !== dimension);
  state.filters.push({ dimension, operator: "is", values: [value] });
  writeAddress();
  load();
  // The clicked row is about to be redrawn: keep the keyboard's place on the new filter.
  $("filters").lastElementChild.focus();
}

function removeFilter(index) {
  state.filters.splice(index, 1);
  writeAddress();
  load();
  $("main").focus();
}

function renderChips() {
  const chips = state.filters.map((f, i) => {
    const operator = f.operator === "prefix" ? " starts with " : " is ";
    const text = labelOf(f.dimension) + operator + f.values.map((v) => v || "(none)").join(" or ");
    const chip = el("button", { type: "button", className: "chip" }, text, el("span", { textContent: "×" }));
    chip.lastChild.setAttribute("aria-hidden", "true");
    chip.setAttribute("aria-label", "Remove filter: " + text);
    chip.addEventListener("click", () => removeFilter(i));
    return chip;
  });
  $("filters").replaceChildren(...chips);
  $("filters").hidden = !chips.length;
}

/* ---- controls ---- */

function buildZones() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const names = ["UTC", ...zones.filter((z) => z !== "UTC")];
  const options = names.map((z) => el("option", { value: z, textContent: z }));
  $("zone").replaceChildren(el("option", { value: "", textContent: "Site's" }), ...options);
}

function fillControls() {
  const site = $("site");
  if (site.options.length !== sites.length) {
    const named = (s) => (s.name && s.name !== s.site_id ? s.name + " (" + s.site_id + ")" : s.site_id);
    site.replaceChildren(...sites.map((s) => el("option", { value: s.site_id, textContent: named(s) })));
  }
  site.value = state.site;
  $("range").value = state.range;
  $("custom").hidden = state.range !== "custom";
  $("start").value = state.start;
  $("end").value = state.end;
  const own = sites.find((s) => s.site_id === state.site);
  $("zone").options[0].textContent = "Site's: " + ((own && own.time_zone) || "UTC");
  if (state.zone && ![...$("zone").options].some((o) => o.value === state.zone)) {
    $("zone").append(el("option", { value: state.zone, textContent: state.zone }));
  }
  $("zone").value = state.zone;
}

function wireControls() {
  $("site").addEventListener("change", (e) => {
    state.site = e.target.value;
    state.filters = [];
    writeAddress();
    load();
  });
  $("range").addEventListener("change", (e) => {
    state.range = e.target.value;
    if (state.range === "custom") {
      $("custom").hidden = false;
      const today = new Date().toISOString().slice(0, 10);
      $("start").value = state.start || today;
      $("end").value = state.end || today;
      $("start").focus();
      return;
    }
    writeAddress();
    load();
  });
  $("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    state.range = "custom";
    state.start = $("start").value;
    state.end = $("end").value;
    if (state.start && state.end) {
      writeAddress();
      load();
    }
  });
  $("zone").addEventListener("change", (e) => {
    state.zone = e.target.value;
    writeAddress();
    load();
  });
  window.addEventListener("popstate", () => {
    readAddress();
    load();
  });
  let resizing = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    const fit = () => chart && chart.setSize({ width: Math.max($("chart").clientWidth, 280), height: 260 });
    resizing = setTimeout(fit, 150);
  });
}

/* ---- live: the visitors of the last 5 minutes and each new event ----
   EventSource cannot send an Authorization header: with a read token the stream is read with
   fetch instead, which can. */

function openLive() {
  if (live && live.site === state.site && live.token === token()) return;
  if (live) live.close();
  $("live-feed").replaceChildren();
  $("live-visitors").textContent = "–";
  const url = "/reports/live?" + new URLSearchParams({ site_id: state.site });
  live = token() ? fetchEvents(url) : eventSource(url);
  live.site = state.site;
  live.token = token();
}

function eventSource(url) {
  const source = new EventSource(url);
  source.onmessage = (e) => onLive(JSON.parse(e.data));
  source.addEventListener("dropped", () => {
    source.close();
    live = null;
    setTimeout(openLive, LIVE_RETRY_MS);
  });
  return { close: () => source.close() };
}

function fetchEvents(url) {
  const abort = new AbortController();
  (async () => {
    try {
      const answer = await fetch(url, { headers: authHeaders(), signal: abort.signal, cache: "no-store" });
      if (answer.status === 401) {
        live = null;
        await askForToken();
        return load();
      }
      const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const lines = buffer.slice(0, end).split("\n");
          buffer = buffer.slice(end + 2);
          const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
          const dropped = lines.includes("event: dropped");
          if (data.length && !dropped) onLive(JSON.parse(data.join("\n")));
        }
      }
    } catch (error) {
      if (abort.signal.aborted) return;
    }
    if (!abort.signal.aborted) setTimeout(() => { live = null; openLive(); }, LIVE_RETRY_MS);
  })();
  return { close: () => abort.abort() };
}

function onLive(update) {
  $("live-visitors").textContent = count(update.visitors);
  $("live-noun").textContent = update.visitors === 1 ? "visitor" : "visitors";
  if (!update.event) return;
  const at = new Date(update.event.timestamp).toLocaleTimeString("en-GB", { timeZone: zoneOfView() });
  const { timestamp, event_type: type, path } = update.event;
  const item = el(
    "li",
    {},
    el("time", { dateTime: timestamp, textContent: at }),
    el("span", { className: "type", textContent: type }),
    el("span", { className: "path", textContent: path }),
  );
  const feed = $("live-feed");
  feed.prepend(item);
  while (feed.children.length > FEED_LENGTH) feed.lastChild.remove();
}

window.dashboard = { chart: null, TILES, PANELS };
document.addEventListener("DOMContentLoaded", () => {
  wireControls();
  start();
});

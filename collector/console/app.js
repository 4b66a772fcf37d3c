// The web console: wires the filter bar, the URL, the hits list, the histogram, the facets,
// the record detail, the live tail, the status strip and the keyboard together.
//
// One query at a time: a new one (the form, a chip, a zoom, a facet, Back/Forward) aborts
// every request of the old one (its AbortController), clears the list and starts again. The URL
// is replaced by the query's (pushState), so a reload, a bookmark or a shared link runs the
// same query (url.js says the contract).
//
// Search: /v1/search streamed (limit per page, progress lines, then Done with a cursor when
// more hits remain: "Load more" asks for the next page from it), /v1/histogram and /v1/facets
// over the same filters and range, in parallel.
//
// Live (live=1): /v1/tail through live.js; the list follows the end. The view pauses, visibly,
// when asked (Pause, Space), when the user scrolls up, or while text in the list is selected;
// paused, new records wait in a buffer ("N new") and the DOM does not change, so nothing
// jumps and no selection is lost. Resuming appends them all: nothing is lost either.

import { allowTokenPrompt, getJSON, onTokenNeeded, streamRows } from "./api.js";
import { Detail } from "./detail.js";
import { Facets } from "./facets.js";
import { Histogram } from "./histogram.js";
import { installKeys } from "./keys.js";
import { Tail } from "./live.js";
import { MAX_HELD, RowList, highlighter } from "./rows.js";
import { Status } from "./status.js";
import {
  DEFAULT_LIMIT,
  MAX_LIMIT,
  TAIL_BACKFILL,
  absolute,
  cliCommand,
  filterParams,
  formatTime,
  rangeParams,
  readState,
  timeRange,
  writeQuery,
} from "./url.js";

const $ = (id) => document.getElementById(id);
const LEVEL_CHIPS = ["", "debug+", "info+", "warn+", "error+"];
const PRESETS = new Set(["5m", "15m", "1h", "6h", "24h", "7d", "30d"]);
const TOAST_MS = 4000;

let state = readState(location.search);
let formLevels = state.levels;
let search = null; // the running search: {ctrl, filters, received, progress, done, cursor, error, loading}
let tail = null;
const live = { paused: "", buffer: [], dropped: 0, conn: "", text: "" };

const list = new RowList($("hits"), { onOpen: (hit) => detail.show(hit, list.re) });
const histogram = new Histogram($("histogram"), { onZoom: zoom });
const facets = new Facets($("facets"), { onPick: pick });
const detail = new Detail($("detail"), {
  onPick: pick,
  onCopy: (text, what) => copy(text, `Copied the ${what}`),
  onClose: () => detail.hide(),
});

// -- form <-> state -------------------------------------------------------------------------

function words(text, commas) {
  return text.split(commas ? /[\s,]+/ : /\s+/).filter(Boolean);
}

function toForm(s) {
  $("q").value = s.q;
  $("fixed").checked = s.fixed;
  $("icase").checked = s.icase;
  $("invert").checked = s.invert;
  $("topic").value = s.topics.join(", ");
  $("host").value = s.hosts.join(" ");
  $("source").value = s.sources.join(" ");
  $("where").value = s.where;
  const range = $("range");
  if (s.since && !PRESETS.has(s.since) && ![...range.options].some((o) => o.value === s.since)) {
    const o = document.createElement("option");
    o.value = s.since;
    o.textContent = `last ${s.since}`;
    range.insertBefore(o, range.querySelector('option[value="custom"]'));
  }
  range.value = s.since || "custom";
  $("from").value = s.from;
  $("to").value = s.to;
  showRangeInputs();
  formLevels = s.levels;
  drawChips();
  $("live").setAttribute("aria-pressed", String(s.live));
  $("order").textContent = s.order === "asc" ? "Order: oldest first" : "Order: newest first";
}

function fromForm() {
  const custom = $("range").value === "custom";
  return {
    topics: words($("topic").value, true),
    q: $("q").value,
    fixed: $("fixed").checked,
    icase: $("icase").checked,
    invert: $("invert").checked,
    hosts: words($("host").value, false),
    sources: words($("source").value, false),
    levels: formLevels,
    where: $("where").value.trim(),
    since: custom ? "" : $("range").value,
    from: custom ? $("from").value.trim() : "",
    to: custom ? $("to").value.trim() : "",
    live: state.live,
    order: state.order,
    limit: state.limit,
  };
}

function showRangeInputs() {
  const custom = $("range").value === "custom";
  $("from").hidden = !custom;
  $("to").hidden = !custom;
}

function drawChips() {
  const box = $("levels");
  const chips = LEVEL_CHIPS.map((level) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `chip${level ? ` lvl-${level.replace("+", "")}` : ""}`;
    b.textContent = level || "all levels";
    const on = level ? formLevels.length === 1 && formLevels[0] === level : formLevels.length === 0;
    b.setAttribute("aria-pressed", String(on));
    b.addEventListener("click", () => {
      formLevels = level ? [level] : [];
      go(fromForm());
    });
    return b;
  });
  const known = formLevels.length === 0 || (formLevels.length === 1 && LEVEL_CHIPS.includes(formLevels[0]));
  if (!known) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "chip";
    b.textContent = formLevels.join(", ");
    b.title = "click to select all levels";
    b.setAttribute("aria-pressed", "true");
    b.addEventListener("click", () => {
      formLevels = [];
      go(fromForm());
    });
    chips.push(b);
  }
  box.replaceChildren(...chips);
}

// -- running a query ------------------------------------------------------------------------

/** Make `next` the state: the URL, the form, and a new query. */
function go(next, { push = true } = {}) {
  allowTokenPrompt();
  state = next;
  const qs = writeQuery(state);
  const url = `${location.pathname}${qs ? `?${qs}` : ""}`;
  if (push && url !== `${location.pathname}${location.search}`) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  toForm(state);
  start();
}

function stop() {
  search?.ctrl.abort();
  search = null;
  tail?.stop();
  tail = null;
  live.paused = "";
  live.buffer = [];
  live.dropped = 0;
  live.conn = "";
  live.text = "";
}

function start() {
  stop();
  detail.hide();
  list.clear(highlighter(state));
  document.body.classList.toggle("is-live", state.live);
  document.title = `${state.q || "all records"}${state.live ? " (live)" : ""} · Wharf`;
  if (state.live) startLive();
  else startSearch();
}

function startSearch() {
  list.stick = false;
  let range;
  try {
    range = timeRange(state, Date.now());
  } catch (err) {
    histogram.clear();
    facets.clear();
    progress(err.message, "error");
    return;
  }
  const ctrl = new AbortController();
  const filters = [...filterParams(state), ...rangeParams(range)];
  search = { ctrl, filters, range, received: 0, progress: null, done: null, cursor: "", error: "", loading: false, onFirst: null };
  // One after the other: the collector's scans share its cores, and run together each takes
  // longer (measured, bench/console.py: the first hit of a 1-hour query came about twice as
  // late). Hits first, which the user waits for; the histogram once the first hits are shown
  // (or the page ended); the facets after it.
  const s = search;
  let started = false;
  s.onFirst = async () => {
    if (started) return;
    started = true;
    await histogram.run(filterParams(state), range, ctrl.signal);
    if (!ctrl.signal.aborted) facets.run(filters, ctrl.signal);
  };
  histogram.message("counting…", "note", "loading");
  facets.note("waiting for the hits…");
  page(s, "");
}

/** One page of hits, from `cursor` ("" for the first). */
async function page(s, cursor) {
  const limit = Math.min(MAX_LIMIT, state.limit || DEFAULT_LIMIT);
  const params = [...s.filters, ["limit", String(limit)], ["order", state.order], ["progress", "1"]];
  if (cursor) params.push(["from", cursor]);
  Object.assign(s, { cursor: "", done: null, progress: null, loading: true, error: "" });
  showSearch();
  let pending = 0;
  try {
    await streamSearch(s, params, () => {
      if (!pending) pending = requestAnimationFrame(() => ((pending = 0), showSearch()));
    });
  } catch (err) {
    if (s.ctrl.signal.aborted) return;
    s.error = err.message;
  }
  if (search !== s) return;
  s.onFirst();
  s.loading = false;
  if (!s.done && !s.error) s.error = "the search answer ended before the search did (did the collector stop?)";
  showSearch();
}

async function streamSearch(s, params, changed) {
  await streamRows("/v1/search", params, s.ctrl.signal, (rows) => {
    if (search !== s) return;
    const hits = [];
    for (const row of rows) {
      if (row.offset !== undefined) hits.push(row);
      else if (row.progress) s.progress = row.progress;
      else if (row.done) {
        s.done = row;
        s.cursor = row.cursor ?? "";
      }
    }
    if (hits.length) {
      s.received += hits.length;
      list.append(hits);
      requestAnimationFrame(() => s.onFirst()); // once they are drawn
    }
    changed();
  });
}

function mb(n) {
  const [size, unit] = n >= 1e9 ? [1e9, "GB"] : n >= 1e6 ? [1e6, "MB"] : n >= 1e3 ? [1e3, "kB"] : [1, "B"];
  return `${(n / size).toLocaleString(undefined, { maximumFractionDigits: 1 })} ${unit}`;
}

function progress(text, kind) {
  const p = $("progress");
  p.textContent = text;
  p.dataset.state = kind;
}

function showSearch() {
  const s = search;
  if (!s) return;
  $("more").hidden = !(s.cursor && !s.loading);
  const held = s.received > list.size ? ` (the page keeps the last ${list.size.toLocaleString()})` : "";
  if (s.error) {
    progress(`${s.received.toLocaleString()} hits${held} · error: ${s.error}`, "error");
    return;
  }
  if (s.loading) {
    let text = `Searching… ${s.received.toLocaleString()} hits${held}`;
    const p = s.progress;
    if (p) {
      const share = p.bytes_total ? ` of ${mb(p.bytes_total)} (${Math.min(100, Math.floor((100 * p.bytes_read) / p.bytes_total))}%)` : "";
      text += ` · scanned ${mb(p.bytes_read)}${share} · ${p.batches_read.toLocaleString()} batches · ${(p.elapsed_ms / 1000).toFixed(1)} s`;
    }
    progress(text, "searching");
    return;
  }
  const st = s.done.stats;
  let text = s.received ? `${s.received.toLocaleString()} hits${held}${s.cursor ? " · more: Load more" : ""}` : "No matching records";
  text += ` · read ${st.batches_read.toLocaleString()} of ${st.batches_total.toLocaleString()} batches (${(st.batches_total - st.batches_read).toLocaleString()} pruned) · scanned ${mb(st.bytes_read)} · ${(st.elapsed_ms / 1000).toFixed(2)} s`;
  if (st.errors) text += ` · ${st.errors} damaged batches skipped: ${st.error_messages[0] ?? ""}`;
  progress(text, st.errors ? "error" : "done");
}

// -- live -----------------------------------------------------------------------------------

function startLive() {
  histogram.clear();
  facets.clear();
  $("more").hidden = true;
  list.stick = true;
  tail = new Tail({
    params: filterParams(state),
    backfill: TAIL_BACKFILL,
    onRows: liveRows,
    onState: (conn, text) => {
      live.conn = conn;
      if (conn !== "live" || !live.text.startsWith("could not resume")) live.text = text;
      showLive();
    },
  });
  tail.start();
  showLive();
}

function liveRows(hits) {
  if (live.paused) {
    for (const h of hits) live.buffer.push(h);
    const over = live.buffer.length - MAX_HELD;
    if (over > 0) {
      live.buffer.splice(0, over);
      live.dropped += over;
    }
  } else list.append(hits);
  showLive();
}

function pause(reason) {
  if (!state.live || live.paused) return;
  live.paused = reason;
  list.stick = false;
  showLive();
}

function resume() {
  if (!state.live || !live.paused) return;
  live.paused = "";
  const waiting = live.buffer;
  live.buffer = [];
  list.append(waiting);
  list.stick = true;
  list.schedule();
  showLive();
}

function showLive() {
  if (!state.live) return;
  const n = live.buffer.length;
  $("pause").hidden = false;
  $("pause").textContent = live.paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(!!live.paused));
  $("newrows").hidden = !live.paused;
  $("newrows").textContent = `${n.toLocaleString()} new ↓`;
  const dropped = live.dropped ? ` (${live.dropped.toLocaleString()} older ones let go)` : "";
  if (live.conn === "failed") progress(`Live tail stopped: ${live.text}`, "error");
  else if (live.conn === "reconnecting" || live.conn === "connecting") {
    progress(live.conn === "connecting" ? "Live · connecting…" : `Live · ${live.text}`, live.conn);
  } else if (live.paused) progress(`Live · paused (${live.paused}) · ${n.toLocaleString()} new${dropped}`, "paused");
  else progress(`Live · following · ${list.size.toLocaleString()} records${live.text ? ` · ${live.text}` : ""}`, "live");
}

// -- actions --------------------------------------------------------------------------------

function zoom(lo, hi) {
  go({ ...state, since: "", from: formatTime(lo), to: formatTime(hi) });
}

function globLiteral(text) {
  return text.replace(/[*?[]/g, "[$&]");
}

function whereLiteral(value) {
  if (typeof value === "number") return String(value);
  const escaped = String(value).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\t/g, "\\t");
  return `"${escaped}"`;
}

/** Include (or exclude) records whose `field` is `value`: host and source as globs, level as
 * a level, the rest (and every exclusion) as a `where` clause. */
function pick(field, value, include) {
  const next = { ...state };
  if (include && field === "host") next.hosts = [globLiteral(String(value))];
  else if (include && field === "source") next.sources = [globLiteral(String(value))];
  else if (include && field === "level" && value) next.levels = [String(value)];
  else {
    const clause = `${field}${include ? "=" : "!="}${whereLiteral(value)}`;
    const old = next.where;
    next.where = !old ? clause : /\bor\b/i.test(old) ? `(${old}) and ${clause}` : `${old} and ${clause}`;
  }
  go(next);
}

let toastTimer = 0;

function toast(message, detailText = "") {
  const t = $("toast");
  const head = document.createElement("strong");
  head.textContent = message;
  const parts = [head];
  if (detailText) {
    const code = document.createElement("code");
    code.textContent = detailText;
    parts.push(code);
  }
  t.replaceChildren(...parts);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.hidden = true;
  }, TOAST_MS);
}

async function copy(text, message) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    // not a secure context (plain http off loopback): the old way
    const area = document.createElement("textarea");
    area.value = text;
    area.readOnly = true;
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    ok = document.execCommand("copy");
    area.remove();
  }
  toast(ok ? message : "Copying failed: select and copy it from here", text);
}

function copyLink() {
  try {
    const qs = writeQuery(absolute(state, Date.now()));
    copy(`${location.origin}${location.pathname}${qs ? `?${qs}` : ""}`, "Copied the link (absolute times)");
  } catch (err) {
    toast(err.message);
  }
}

function copyCli() {
  const { command, warning } = cliCommand(state, location.origin);
  copy(command, warning ? `Copied the command: ${warning}` : "Copied the command");
}

// -- token prompt ---------------------------------------------------------------------------

onTokenNeeded(
  (status, message) =>
    new Promise((resolve) => {
      const dialog = $("token-dialog");
      const input = $("token");
      $("token-why").textContent =
        status === 401
          ? `This collector needs a read token (${message}).`
          : `The token was refused (${message}). Enter another.`;
      input.value = "";
      const finish = (value) => {
        $("token-form").removeEventListener("submit", submit);
        $("token-cancel").removeEventListener("click", cancel);
        dialog.removeEventListener("cancel", cancel);
        if (dialog.open) dialog.close();
        resolve(value);
      };
      const submit = (e) => {
        e.preventDefault();
        finish(input.value.trim());
      };
      const cancel = (e) => {
        e.preventDefault();
        finish("");
      };
      $("token-form").addEventListener("submit", submit);
      $("token-cancel").addEventListener("click", cancel);
      dialog.addEventListener("cancel", cancel);
      dialog.showModal();
      input.focus();
    }),
);

// -- theme ----------------------------------------------------------------------------------

const THEMES = ["system", "light", "dark"];

function themeNow() {
  return document.documentElement.dataset.theme ?? "system";
}

function drawTheme() {
  $("theme").textContent = `Theme: ${themeNow()}`;
}

$("theme").addEventListener("click", () => {
  const next = THEMES[(THEMES.indexOf(themeNow()) + 1) % THEMES.length];
  try {
    if (next === "system") localStorage.removeItem("wharf.theme");
    else localStorage.setItem("wharf.theme", next);
  } catch {
    // storage disabled: this page only
  }
  if (next === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = next;
  drawTheme();
});

// -- wiring ---------------------------------------------------------------------------------

$("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  go(fromForm());
});
$("range").addEventListener("change", () => {
  showRangeInputs();
  if ($("range").value !== "custom") go(fromForm());
  else $("from").focus();
});
for (const id of ["fixed", "icase", "invert"]) $(id).addEventListener("change", () => go(fromForm()));
$("live").addEventListener("click", () => go({ ...fromForm(), live: !state.live }));
$("order").addEventListener("click", () => go({ ...fromForm(), order: state.order === "asc" ? "desc" : "asc" }));
$("more").addEventListener("click", () => {
  if (search?.cursor && !search.loading) page(search, search.cursor);
});
$("pause").addEventListener("click", () => (live.paused ? resume() : pause("paused")));
$("newrows").addEventListener("click", resume);
$("copy-link").addEventListener("click", copyLink);
$("copy-cli").addEventListener("click", copyCli);
window.addEventListener("popstate", () => {
  state = readState(location.search);
  toForm(state);
  start();
});

let lastTop = 0;
$("hits").addEventListener(
  "scroll",
  () => {
    const top = $("hits").scrollTop;
    if (state.live) {
      if (!live.paused && top < lastTop - 1 && !list.atEnd()) pause("scrolled up");
      else if (live.paused === "scrolled up" && list.atEnd()) resume();
    }
    lastTop = top;
  },
  { passive: true },
);

document.addEventListener("selectionchange", () => {
  if (!state.live) return;
  const sel = getSelection();
  const inList = !!sel && !sel.isCollapsed && $("hits").contains(sel.anchorNode);
  if (inList && !live.paused) pause("text selected");
  else if (!inList && live.paused === "text selected") resume();
});

installKeys({
  focus: () => {
    $("q").focus();
    $("q").select();
  },
  escape: (field) => {
    if (field) {
      if (field.id === "q") field.value = "";
      field.blur();
    } else if (detail.open) detail.hide();
    else {
      list.selected = -1;
      list.schedule();
    }
  },
  pause: () => (live.paused ? resume() : pause("paused")),
  move: (delta) => list.move(delta),
  expand: () => list.toggle(list.selected),
  open: () => {
    const hit = list.hit(list.selected);
    if (hit) detail.show(hit, list.re);
  },
});

drawTheme();
toForm(state);
start();
new Status($("status")).start();
getJSON("/v1/topics", [], undefined)
  .then((answer) => {
    $("topics").replaceChildren(
      ...answer.topics.map((t) => {
        const o = document.createElement("option");
        o.value = t.name;
        return o;
      }),
    );
  })
  .catch(() => {
    // the datalist is a convenience: the status strip says what is wrong
  });

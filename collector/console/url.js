// The URL is the state: the query string of the page uses the /v1/search parameter names
// (topic repeatable, q, fixed, icase, invert, host, source, level, where) plus since (a
// duration: 15m, 1h, 7d) or from/to (RFC 3339), live=1, order and limit. Opening such a URL
// runs that query; "Copy link" writes absolute times; "Copy as CLI" the same query as a
// `wharf grep` or `wharf tail` command line.
//
// Times in the page are whole milliseconds (exact in a double); the API takes nanoseconds, so
// they travel as `${ms}000000` strings and never lose a digit.

export const DEFAULT_SINCE = "1h";
// Hits per page (a search's `limit`): the first screen comes fast, "Load more" moves the cursor.
export const DEFAULT_LIMIT = 1000;
// A page may ask for more with limit=N in the URL, up to this (the list holds at most
// rows.MAX_HELD records; the stream is read as it comes, never all at once).
export const MAX_LIMIT = 100_000;
// Records a live tail shows before following.
export const TAIL_BACKFILL = 100;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;
// 400 weeks, as the CLI's limit.
const MAX_DURATION_MS = 400 * UNIT_MS.w;
const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*([Zz]|[+-]\d{2}:?\d{2})?)?$/;
const TRUE = new Set(["1", "true", "yes", "on"]);

/** Milliseconds of a duration like 15m, 1h30m, 7d; null when it is not one. */
export function parseDuration(text) {
  const s = String(text).trim().toLowerCase();
  if (!DURATION.test(s)) return null;
  let total = 0;
  for (const [, n, unit] of s.matchAll(DURATION_PART)) total += Number(n) * UNIT_MS[unit];
  total = Math.round(total);
  return total > 0 && total <= MAX_DURATION_MS ? total : null;
}

/** Milliseconds since the epoch of an RFC 3339 time, a date, or a date and time without a
 * zone (local, as the CLI reads it); null when it is none of these. Sub-millisecond digits are
 * dropped. */
export function parseTime(text) {
  const m = RFC3339.exec(String(text).trim());
  if (!m) return null;
  const [, y, mo, d, hh = "0", mm = "0", ss = "0", frac = "", zone] = m;
  const ms = Number(frac.padEnd(3, "0").slice(0, 3));
  const parts = [Number(y), Number(mo) - 1, Number(d), Number(hh), Number(mm), Number(ss), ms];
  if (parts[1] > 11 || parts[2] < 1 || parts[2] > 31 || parts[3] > 23 || parts[4] > 59 || parts[5] > 60) {
    return null;
  }
  if (!zone) return new Date(...parts).getTime();
  const utc = Date.UTC(...parts);
  if (zone.toUpperCase() === "Z") return utc;
  const digits = zone.slice(1).replace(":", "");
  const offset = (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  return zone[0] === "+" ? utc - offset : utc + offset;
}

/** RFC 3339 in UTC with milliseconds. */
export function formatTime(ms) {
  return new Date(ms).toISOString();
}

/** Nanoseconds since the epoch, as the API's decimal text. */
export function nanos(ms) {
  return ms === 0 ? "0" : `${ms}000000`;
}

/** The page's state, as a URL's query string says it (defaults for what it leaves out). */
export function readState(search) {
  const p = new URLSearchParams(search);
  const list = (name, split) =>
    p.getAll(name).flatMap((v) => (split ? v.split(",") : [v])).map((v) => v.trim()).filter(Boolean);
  const flag = (name) => TRUE.has((p.get(name) ?? "").trim().toLowerCase());
  const state = {
    topics: list("topic", true),
    q: p.get("q") ?? "",
    fixed: flag("fixed"),
    icase: flag("icase"),
    invert: flag("invert"),
    hosts: list("host", false),
    sources: list("source", false),
    levels: list("level", true),
    where: p.get("where") ?? "",
    since: (p.get("since") ?? "").trim(),
    from: (p.get("from") ?? "").trim(),
    to: (p.get("to") ?? "").trim(),
    live: flag("live"),
    order: (p.get("order") ?? "").trim().toLowerCase() === "asc" ? "asc" : "desc",
    limit: Number.parseInt(p.get("limit") ?? "", 10) || 0,
  };
  if (!state.since && !state.from && !state.to) state.since = DEFAULT_SINCE;
  return state;
}

/** The query string of a state (what differs from the defaults, in a fixed order). */
export function writeQuery(state) {
  const p = new URLSearchParams();
  for (const t of state.topics) p.append("topic", t);
  if (state.q) p.append("q", state.q);
  if (state.fixed) p.append("fixed", "1");
  if (state.icase) p.append("icase", "1");
  if (state.invert) p.append("invert", "1");
  for (const h of state.hosts) p.append("host", h);
  for (const s of state.sources) p.append("source", s);
  for (const l of state.levels) p.append("level", l);
  if (state.where) p.append("where", state.where);
  if (!state.live) {
    if (state.since) p.append("since", state.since);
    else {
      if (state.from) p.append("from", state.from);
      if (state.to) p.append("to", state.to);
    }
    if (state.order === "asc") p.append("order", "asc");
    if (state.limit) p.append("limit", String(state.limit));
  } else {
    p.append("live", "1");
  }
  return p.toString();
}

/** The time range a state selects at `now`: {lo, hi} in ms (lo may be null: from the
 * beginning). Throws an Error saying what is wrong with a bad duration or time. */
export function timeRange(state, now) {
  if (state.since) {
    const dur = parseDuration(state.since);
    if (dur === null) {
      throw new Error(`since=${state.since} is not a duration: use a number and a unit, like 15m, 1h, 7d`);
    }
    return { lo: now - dur, hi: now };
  }
  const lo = state.from ? parseTime(state.from) : null;
  const hi = state.to ? parseTime(state.to) : now;
  if (state.from && lo === null) throw new Error(`from=${state.from} is not a time: use RFC 3339, like 2024-05-01T12:00:00Z`);
  if (state.to && hi === null) throw new Error(`to=${state.to} is not a time: use RFC 3339, like 2024-05-01T12:30:00Z`);
  if (lo !== null && lo >= hi) throw new Error(`empty time range: from ${state.from} is not before to ${state.to || "now"}`);
  return { lo, hi };
}

/** The same state with its relative range made absolute (what "Copy link" writes). */
export function absolute(state, now) {
  if (state.live || !state.since) return { ...state };
  const { lo, hi } = timeRange(state, now);
  return { ...state, since: "", from: formatTime(lo), to: formatTime(hi) };
}

/** The API parameters of the filters (search, histogram, facets and tail share them). */
export function filterParams(state) {
  const out = [];
  for (const t of state.topics) out.push(["topic", t]);
  if (state.q) out.push(["q", state.q]);
  if (state.fixed) out.push(["fixed", "1"]);
  if (state.icase) out.push(["icase", "1"]);
  if (state.invert) out.push(["invert", "1"]);
  for (const h of state.hosts) out.push(["host", h]);
  for (const s of state.sources) out.push(["source", s]);
  for (const l of state.levels) out.push(["level", l]);
  if (state.where) out.push(["where", state.where]);
  return out;
}

/** since/until parameters (ns) of a range in ms. */
export function rangeParams({ lo, hi }) {
  const out = [];
  if (lo !== null && lo !== undefined) out.push(["since", nanos(lo)]);
  if (hi !== null && hi !== undefined) out.push(["until", nanos(hi)]);
  return out;
}

const SAFE = /^[A-Za-z0-9_.,:/@%+=-]+$/;

/** A word for a POSIX shell. */
export function shellQuote(word) {
  const s = String(word);
  return SAFE.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

/** The `wharf grep` (or, live, `wharf tail`) command of a state: {command, warning}. The
 * collector's address goes in --http; the token stays in $WHARF_TOKEN. */
export function cliCommand(state, origin) {
  const args = [];
  const opt = (flag, values) => values.forEach((v) => args.push(flag, v));
  let warning = "";
  if (state.live) {
    args.push("wharf", "tail");
    opt("-t", state.topics);
    opt("--host", state.hosts);
    opt("--source", state.sources);
    opt("--level", state.levels);
    if (state.where) args.push("--where", state.where);
    if (state.q) args.push("-e", state.q);
    if (state.q && state.fixed) args.push("-F");
    if (state.q && state.icase) args.push("-i");
    if (state.invert) warning = "wharf tail has no -v: the command shows the matching lines";
    args.push("-n", String(TAIL_BACKFILL), "--http", origin);
    return { command: args.map(shellQuote).join(" "), warning };
  }
  args.push("wharf", "grep");
  if (state.fixed) args.push("-F");
  if (state.icase) args.push("-i");
  if (state.invert) args.push("-v");
  opt("-t", state.topics);
  opt("--host", state.hosts);
  opt("--source", state.sources);
  opt("--level", state.levels);
  if (state.where) args.push("--where", state.where);
  if (state.since) args.push("--since", state.since);
  else {
    if (state.from) args.push("--from", state.from);
    if (state.to) args.push("--to", state.to);
  }
  if (state.order === "desc") args.push("--newest-first");
  if (state.limit) args.push("--limit", String(state.limit));
  args.push("--http", origin);
  // A pattern starting with "-" would be read as an option.
  if (state.q.startsWith("-")) args.push("--");
  const words = args.map(shellQuote);
  words.push(state.q === "" ? "''" : shellQuote(state.q));
  return { command: words.join(" "), warning };
}

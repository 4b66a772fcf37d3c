// The collector's API from the page: JSON answers, and NDJSON streams read with fetch() and a
// ReadableStream as they arrive (htmx swaps a streamed answer only once it ends, and
// EventSource cannot send an Authorization header). Every request takes an AbortSignal: a new
// query aborts the old one, which closes its connection, which ends the scan on the server.
//
// Tokens: when the API answers 401 (no token) or 403 (a wrong one), the page asks for a read
// token once (one prompt for every request waiting on it), keeps it in sessionStorage (this tab
// only, gone when it closes) and sends it as `Authorization: Bearer`.

const TOKEN_KEY = "wharf.token";
// A line of NDJSON longer than this is not one the API sends (its records are bounded well
// below it): the stream is taken as broken rather than buffered without end.
const MAX_LINE_CHARS = 64 * 1024 * 1024;
// How often one request may ask for a token before it gives up with the API's answer.
const MAX_TOKEN_ASKS = 3;

/** An error answer of the API ({"error", "code", "retriable"}), or a failed connection. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "", retriable = false } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retriable = retriable;
  }
}

let askToken = null;
let asking = null;
let declined = false;

/** Install the prompt: `ask(status, message)` resolves to the token typed, or "" when the
 * user declined. */
export function onTokenNeeded(ask) {
  askToken = ask;
}

/** A user action (a new query) may ask for a token again after the user declined once;
 * background requests (the status strip) never ask twice. */
export function allowTokenPrompt() {
  declined = false;
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: the token is not kept, the request still goes
  }
}

/** Ask once for everybody waiting; true when a new token was given. */
async function ask(status, message, sent) {
  if (!askToken || declined) return false;
  if (token() !== sent) return true; // someone else's prompt already changed it: try that
  asking ??= askToken(status, message).finally(() => {
    asking = null;
  });
  const given = await asking;
  if (!given) {
    declined = true;
    return false;
  }
  setToken(given);
  return true;
}

export function apiUrl(path, params = []) {
  const u = new URL(path, location.origin);
  for (const [k, v] of params) u.searchParams.append(k, v);
  return u;
}

async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: a proxy's page
  }
  if (body && typeof body.error === "string") {
    return new ApiError(body.error, { status: res.status, code: body.code ?? "", retriable: !!body.retriable });
  }
  return new ApiError(`HTTP ${res.status} ${res.statusText} from ${new URL(res.url).pathname}`, {
    status: res.status,
    retriable: res.status >= 500,
  });
}

async function send(path, params, signal) {
  for (let attempt = 0; ; attempt++) {
    const sent = token();
    const headers = sent ? { Authorization: `Bearer ${sent}` } : {};
    let res;
    try {
      res = await fetch(apiUrl(path, params), { headers, signal, cache: "no-store" });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new ApiError(`the collector at ${location.host} is not answering (${err.message})`, { retriable: true });
    }
    if ((res.status === 401 || res.status === 403) && attempt < MAX_TOKEN_ASKS) {
      const err = await errorOf(res);
      if (await ask(res.status, err.message, sent)) continue;
      throw err;
    }
    if (!res.ok) throw await errorOf(res);
    return res;
  }
}

/** GET a JSON answer. */
export async function getJSON(path, params, signal) {
  const res = await send(path, params, signal);
  return res.json();
}

const TS = /"ts":(\d+)/;

/** Parse one NDJSON line. A record keeps its exact nanosecond time as text in `tsText` (a
 * double holds 15 to 16 digits; the time has 19). An error line throws its error. */
export function parseRow(line) {
  const row = JSON.parse(line);
  if (row.error !== undefined) {
    throw new ApiError(String(row.error), { code: row.code ?? "", retriable: !!row.retriable });
  }
  if (row.offset !== undefined) {
    // The first "ts": of a record line is its own (topic, partition and offset come before it).
    row.tsText = TS.exec(line)?.[1] ?? String(row.ts);
  }
  return row;
}

/** GET an NDJSON stream; `onRows(rows)` gets each network chunk's complete lines, parsed, as
 * they arrive. Resolves to true when the stream ended on a line boundary, false when it was
 * cut in the middle of a line (a collector that went away). */
export async function streamRows(path, params, signal, onRows) {
  const res = await send(path, params, signal);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = "";
  try {
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (signal?.aborted) throw err;
        throw new ApiError(`the connection to ${location.host} broke (${err.message})`, { retriable: true });
      }
      if (chunk.done) break;
      rest += chunk.value;
      const cut = rest.lastIndexOf("\n");
      if (cut < 0) {
        if (rest.length > MAX_LINE_CHARS) throw new ApiError(`a line of ${path} is longer than ${MAX_LINE_CHARS} characters`);
        continue;
      }
      const text = rest.slice(0, cut);
      rest = rest.slice(cut + 1);
      const rows = [];
      for (const line of text.split("\n")) if (line) rows.push(parseRow(line));
      if (rows.length) onRows(rows);
    }
  } catch (err) {
    reader.cancel().catch(() => {}); // closes the connection: the server stops
    throw err;
  }
  return rest.trim() === "";
}

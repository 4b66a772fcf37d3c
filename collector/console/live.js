// The live tail's connection: /v1/tail, records as the collector commits them, and a cursor
// so that a broken connection (a collector restart) resumes with no gap and no repeat.
//
// The cursor is the next offset per topic:partition. A heartbeat carries the collector's own
// ({"heartbeat": true, "cursor": "t:0:120,t:1:55"}: every partition tailed, even those with no
// match yet); each record received moves its partition to offset + 1. Merged (the larger
// offset wins), it is exactly "after the last record this page has", and reconnecting with
// from= it skips the backfill. Records buffered by a paused view count as received: they are
// shown on resume, so they must not come again.
//
// A topic that does not exist yet is waited for the same way (its first record creates it).
// A connection that ends, breaks, or says nothing for STALL_MS (heartbeats come every few
// seconds) is opened again after a pause growing from RETRY_MIN_MS to RETRY_MAX_MS, for as
// long as the page is live. A resume the collector refuses (the topic was deleted, retention
// removed the offsets, the data is gone) starts again from the end, and says so.

import { ApiError, streamRows } from "./api.js";

const STALL_MS = 30_000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5_000;

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

export class Tail {
  /** `params`: the filters; `backfill`: records to show first; `onRows(hits)`: new records;
   * `onState(state, text)`: "connecting" | "live" | "reconnecting" | "failed" | "warning". */
  constructor({ params, backfill, onRows, onState }) {
    this.params = params;
    this.backfill = backfill;
    this.onRows = onRows;
    this.onState = onState;
    this.positions = new Map(); // "topic:partition" -> next offset
    this.stopped = new AbortController();
    this.conn = null;
    this.lastData = 0;
  }

  /** The resume cursor: topic:partition:offset,... */
  cursor() {
    return [...this.positions].map(([k, o]) => `${k}:${o}`).sort().join(",");
  }

  stop() {
    this.stopped.abort();
    this.conn?.abort();
  }

  take(rows) {
    this.lastData = Date.now();
    const hits = [];
    for (const row of rows) {
      if (row.heartbeat) {
        for (const item of row.cursor.split(",")) {
          const cut = item.lastIndexOf(":");
          if (cut < 0) continue;
          const key = item.slice(0, cut);
          const offset = Number(item.slice(cut + 1));
          if (!(this.positions.get(key) >= offset)) this.positions.set(key, offset);
        }
      } else if (row.offset !== undefined) {
        const key = `${row.topic}:${row.partition}`;
        if (!(this.positions.get(key) > row.offset)) this.positions.set(key, row.offset + 1);
        hits.push(row);
      }
    }
    if (hits.length) this.onRows(hits);
  }

  async start() {
    const stop = this.stopped.signal;
    let failures = 0;
    let connected = false; // a first answer came: no backfill after that
    const watch = setInterval(() => {
      if (this.conn && this.lastData && Date.now() - this.lastData > STALL_MS) this.conn.abort();
    }, 1000);
    try {
      while (!stop.aborted) {
        const from = this.cursor();
        const params = [...this.params];
        if (from) params.push(["from", from]);
        else if (!connected && this.backfill) params.push(["n", String(this.backfill)]);
        this.conn = new AbortController();
        this.lastData = Date.now();
        this.onState(failures ? "reconnecting" : "connecting", failures ? `reconnecting (attempt ${failures + 1})` : "connecting");
        let why = "the collector ended the stream";
        try {
          await streamRows("/v1/tail", params, this.conn.signal, (rows) => {
            if (!connected || failures) this.onState("live", "");
            connected = true;
            failures = 0;
            this.take(rows);
          });
        } catch (err) {
          if (stop.aborted) return;
          if (err instanceof ApiError && err.code === "unknown_topic" && !from) {
            // A topic that does not exist yet: its first record creates it. Wait for it.
            why = `${err.message}: waiting for it`;
          } else if (err instanceof ApiError && err.status >= 400 && err.status < 500 && !err.retriable) {
            if (!from) {
              this.onState("failed", err.message);
              return;
            }
            this.positions.clear();
            connected = true; // from the end, no backfill: the records before were shown
            this.onState("warning", `could not resume (${err.message}): following from the end, records in between may be missing`);
            continue;
          }
          why = err instanceof ApiError ? err.message : "no data for a while";
        }
        if (stop.aborted) return;
        failures++;
        this.onState("reconnecting", `${why}; reconnecting (attempt ${failures + 1})`);
        await sleep(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (failures - 1)), stop);
      }
    } finally {
      clearInterval(watch);
    }
  }
}

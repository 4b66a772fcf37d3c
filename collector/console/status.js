// The status strip: /v1/status every POLL_MS (health, ingest rate, connected shippers, and the
// lag: how long ago the newest stored record was written, by its time). A background request:
// it never asks for a token a user declined.

import { getJSON } from "./api.js";

const POLL_MS = 10_000;

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

function rate(n) {
  return n.toLocaleString(undefined, { maximumFractionDigits: n < 10 ? 1 : 0 });
}

export class Status {
  constructor(strip) {
    this.strip = strip;
    this.timer = 0;
  }

  start() {
    const tick = async () => {
      await this.poll();
      this.timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  item(text, cls = "", title = "") {
    const s = document.createElement("span");
    s.textContent = text;
    if (cls) s.className = cls;
    if (title) s.title = title;
    return s;
  }

  async poll() {
    const ctrl = new AbortController();
    const t = setTimeout(() => ctrl.abort(), POLL_MS);
    try {
      const s = await getJSON("/v1/status", [], ctrl.signal);
      const newest = Math.max(0, ...s.topics.map((t) => (t.max_ts ? Number(t.max_ts) / 1e6 : 0)));
      const records = s.topics.reduce((n, t) => n + t.records, 0);
      const shippers = s.shippers === null ? "shippers: n/a" : `${s.shippers.length} shipper${s.shippers.length === 1 ? "" : "s"}`;
      const parts = [
        this.item(`● ${s.status}`, s.status === "ok" ? "ok" : "bad", s.error ?? ""),
        this.item(`${rate(s.ingest.records_per_s)} rec/s`, "", `records stored per second over the last ${s.ingest.window_s} s`),
        this.item(shippers, "", (s.shippers ?? []).map((x) => `${x.peer} (${x.client})`).join("\n")),
        this.item(newest ? `lag ${ago(Date.now() - newest)}` : "no records", "", "since the time of the newest stored record"),
        this.item(`${s.topics.length} topics · ${records.toLocaleString()} records`),
        this.item(`v${s.version}`, "muted", `up ${ago(s.uptime_s * 1000)}`),
      ];
      this.strip.replaceChildren(...parts);
    } catch (err) {
      this.strip.replaceChildren(this.item(`● ${err.status === 401 || err.status === 403 ? "needs a token" : "unreachable"}`, "bad", err.message));
    } finally {
      clearTimeout(t);
    }
  }
}

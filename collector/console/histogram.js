// The volume histogram: records per time bucket, stacked by level, as inline SVG built with
// DOM calls (one <rect> per bucket and level that has records; colours are CSS variables
// through the lvl-* classes). One request to /v1/histogram, which counts without building
// records, exact and pruned like a count: never a query per bucket (grafana#51786).
//
// The page picks a round step (1 s, 5 m, 1 h...) for about TARGET_BUCKETS buckets and sends
// whole-millisecond bounds, so every bucket edge is a whole millisecond and survives the trip
// through a JSON double. Click a bucket to zoom to it; drag across buckets to zoom to the
// dragged range: `onZoom(loMs, hiMs)`.

import { getJSON } from "./api.js";
import { nanos } from "./url.js";

const SVG = "http://www.w3.org/2000/svg";
const TARGET_BUCKETS = 80;
const PLOT_H = 84;
const AXIS_H = 16;
// A drag shorter than this (px) is a click.
const DRAG_PX = 4;
const STEPS_MS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500,
  1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
  60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
  3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000,
  86_400_000, 172_800_000, 604_800_000, 2_592_000_000,
];

/** The round step (ms) that cuts `rangeMs` into at most TARGET_BUCKETS buckets. */
export function pickStep(rangeMs) {
  return STEPS_MS.find((s) => rangeMs / s <= TARGET_BUCKETS) ?? STEPS_MS.at(-1);
}

const ms = (ns) => Math.round(Number(ns) / 1e6);

function el(name, attrs = {}, cls = "") {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (cls) node.setAttribute("class", cls);
  return node;
}

function label(t, step) {
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, "0");
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (step < 1000) return `${hm}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
  if (step < 60_000) return `${hm}:${pad(d.getSeconds())}`;
  if (step < 86_400_000) return hm;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function stepName(step) {
  const units = [[86_400_000, "day"], [3_600_000, "hour"], [60_000, "minute"], [1000, "second"], [1, "ms"]];
  const [size, name] = units.find(([u]) => step % u === 0);
  const n = step / size;
  return name === "ms" ? `${n} ms` : n === 1 ? `1 ${name}` : `${n} ${name}s`;
}

export class Histogram {
  constructor(section, { onZoom }) {
    this.section = section;
    this.onZoom = onZoom;
    this.answer = null;
    this.range = null;
    new ResizeObserver(() => {
      if (this.answer) this.draw();
    }).observe(section);
  }

  clear() {
    this.answer = null;
    this.section.dataset.state = "";
    this.section.replaceChildren();
  }

  message(text, cls = "note", state = "") {
    this.answer = null;
    this.section.dataset.state = state;
    const p = document.createElement("p");
    p.className = cls;
    p.textContent = text;
    this.section.replaceChildren(p);
  }

  /** Fetch and draw the histogram of `filters` over `range` ({lo, hi} ms). */
  async run(filters, range, signal) {
    const { lo, hi } = range;
    if (lo === null) {
      this.message("give the range a start (from) to see records over time");
      return;
    }
    const step = pickStep(hi - lo);
    const params = [...filters, ["since", nanos(lo)], ["until", nanos(hi)], ["step", nanos(step)]];
    this.message("counting…", "note", "loading");
    try {
      const answer = await getJSON("/v1/histogram", params, signal);
      if (signal.aborted) return;
      this.answer = answer;
      this.draw();
    } catch (err) {
      if (signal.aborted) return;
      this.message(`histogram: ${err.message}`, "error", "error");
    }
  }

  draw() {
    const a = this.answer;
    const pad = getComputedStyle(this.section);
    const inner = this.section.clientWidth - Number.parseFloat(pad.paddingLeft) - Number.parseFloat(pad.paddingRight);
    const width = Math.max(200, Math.floor(inner));
    const lo = ms(a.since);
    const hi = ms(a.until);
    const step = ms(a.step);
    const span = Math.max(1, hi - lo);
    const x = (t) => ((t - lo) / span) * width;
    const max = Math.max(1, ...a.buckets.map((b) => b.counts.reduce((s, c) => s + c, 0)));
    const svg = el("svg", { width, height: PLOT_H + AXIS_H, viewBox: `0 0 ${width} ${PLOT_H + AXIS_H}`, role: "img" });
    const title = el("title");
    title.textContent = `${a.total.toLocaleString()} records, ${a.buckets.length} buckets`;
    svg.append(title);
    for (const b of a.buckets) {
      const from = Math.max(lo, ms(b.ts));
      const to = Math.min(hi, ms(b.ts) + step);
      const total = b.counts.reduce((s, c) => s + c, 0);
      const g = el("g", { "data-from": from, "data-to": to, "data-count": total }, "bucket");
      const x0 = x(from);
      const w = Math.max(2, x(to) - x0 - 1);
      const tip = el("title");
      const parts = a.levels.map((l, i) => [l, b.counts[i]]).filter(([, c]) => c > 0);
      tip.textContent =
        `${label(from, step)} – ${label(to, step)}: ${total.toLocaleString()} records` +
        (parts.length ? ` (${parts.map(([l, c]) => `${l} ${c.toLocaleString()}`).join(", ")})` : "");
      g.append(tip, el("rect", { x: x0, y: 0, width: w, height: PLOT_H }, "hitbox"));
      let y = PLOT_H;
      a.levels.forEach((level, i) => {
        const c = b.counts[i];
        if (!c) return;
        const h = Math.max(1, (c / max) * (PLOT_H - 4));
        y -= h;
        g.append(el("rect", { x: x0, y, width: w, height: h, "data-level": level, "data-count": c }, `bar lvl-${level}`));
      });
      svg.append(g);
    }
    const ticks = Math.max(2, Math.floor(width / 140));
    for (let i = 0; i < ticks; i++) {
      const t = lo + Math.round((span * i) / ticks);
      const text = el("text", { x: x(t) + 2, y: PLOT_H + AXIS_H - 4 }, "axis");
      text.textContent = label(t, step);
      svg.append(el("line", { x1: x(t), x2: x(t), y1: PLOT_H, y2: PLOT_H + 4 }, "tick"), text);
    }
    const band = el("rect", { x: 0, y: 0, width: 0, height: PLOT_H }, "band");
    svg.append(band);
    this.drag(svg, band, width, lo, span);
    const caption = document.createElement("p");
    caption.className = "caption";
    caption.textContent =
      `${a.total.toLocaleString()} records · ${stepName(step)} buckets · highest ${max.toLocaleString()} · ` +
      "click a bar or drag across bars to zoom";
    this.section.replaceChildren(caption, svg);
    this.section.dataset.state = "ready";
  }

  drag(svg, band, width, lo, span) {
    let x0 = null;
    const at = (e) => Math.min(width, Math.max(0, e.clientX - svg.getBoundingClientRect().left));
    const time = (px) => lo + Math.round((px / width) * span);
    svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      x0 = at(e);
      svg.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    svg.addEventListener("pointermove", (e) => {
      if (x0 === null) return;
      const x1 = at(e);
      band.setAttribute("x", String(Math.min(x0, x1)));
      band.setAttribute("width", String(Math.abs(x1 - x0)));
    });
    svg.addEventListener("pointerup", (e) => {
      if (x0 === null) return;
      const x1 = at(e);
      const start = x0;
      x0 = null;
      band.setAttribute("width", "0");
      if (Math.abs(x1 - start) < DRAG_PX) {
        // A click: the bucket under it (the captured pointer's target is the whole SVG).
        const t = time(x1);
        for (const g of svg.querySelectorAll("g.bucket")) {
          if (Number(g.dataset.from) <= t && t < Number(g.dataset.to)) {
            this.onZoom(Number(g.dataset.from), Number(g.dataset.to));
            return;
          }
        }
        return;
      }
      const a = time(Math.min(start, x1));
      const b = time(Math.max(start, x1));
      if (b - a >= 1) this.onZoom(a, b);
    });
    svg.addEventListener("pointercancel", () => {
      x0 = null;
      band.setAttribute("width", "0");
    });
  }
}

// The hits list: a virtualized window over the records the page holds, so that a million hits
// never freeze the tab (grafana#25457, logdy-core#72, graylog#2338: every hit in the DOM).
//
// - Only the rows in view, plus OVERSCAN on each side, exist as elements; they sit absolutely
//   positioned in a spacer as tall as all the rows. Rows have one fixed height, except the few
//   expanded ones, whose measured heights are kept apart (positions add them up).
// - Rendering happens once per animation frame, whatever arrived meanwhile.
// - The page holds at most MAX_HELD records: past that the oldest are let go, and the view
//   is shifted by their height in the same frame, so what is on screen does not move.
// - Long lines are cut at CUT_CHARS with an expand control (Enter, or the "+N chars" button);
//   an expanded row wraps and shows up to EXPANDED_CHARS.
// - Every string is put in with textContent or text nodes, never as HTML; a match is a <mark>
//   around a text node (highlight()).

export const MAX_HELD = 200_000;
const OVERSCAN = 20;
const CUT_CHARS = 240;
const EXPANDED_CHARS = 64 * 1024;
const MAX_EXPANDED = 50;
// Matches marked per line at most: a pattern like "." must not make thousands of elements.
const MAX_MARKS = 64;

/** A RegExp that finds what the query matches, for highlighting; null when nothing should be
 * marked (no pattern, an inverted match) or the RE2 pattern is not valid JavaScript. */
export function highlighter(state) {
  if (!state.q || state.invert) return null;
  let source = state.q;
  let flags = state.icase ? "gi" : "g";
  if (state.fixed) source = source.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
  else {
    if (source.startsWith("(?i)")) {
      source = source.slice(4);
      if (!flags.includes("i")) flags += "i";
    }
    source = source.replaceAll("(?P<", "(?<");
  }
  for (const f of [`${flags}u`, flags]) {
    try {
      return new RegExp(source, f);
    } catch {
      // RE2 syntax JavaScript does not know: try without the u flag, then give up
    }
  }
  return null;
}

/** Append `text` to `parent` as text nodes, the matches of `re` wrapped in <mark>. */
export function highlight(parent, text, re) {
  if (!re || !text) {
    parent.append(text);
    return;
  }
  re.lastIndex = 0;
  let at = 0;
  let marks = 0;
  for (let m = re.exec(text); m !== null && marks < MAX_MARKS; m = re.exec(text)) {
    if (m[0] === "") {
      re.lastIndex++;
      continue;
    }
    if (m.index > at) parent.append(text.slice(at, m.index));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    parent.append(mark);
    at = m.index + m[0].length;
    marks++;
  }
  if (at < text.length) parent.append(text.slice(at));
}

/** Local date and time of a record with milliseconds: 2024-05-01 14:03:07.250. */
export function localTime(hit) {
  const d = new Date(msOf(hit));
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

/** A record's time in whole ms (from its exact text: no rounding of the nanoseconds). */
export function msOf(hit) {
  const t = hit.tsText ?? String(hit.ts);
  return t.length > 6 ? Number(t.slice(0, -6)) : 0;
}

export class RowList {
  /** `viewport` scrolls; its `.spacer` child holds the rows. `onOpen(hit)`: a row clicked. */
  constructor(viewport, { onOpen }) {
    this.vp = viewport;
    this.spacer = viewport.querySelector(".spacer");
    this.onOpen = onOpen;
    this.items = [];
    this.first = 0; // sequence number of items[0]; rows keep their number while held
    this.els = new Map(); // seq -> element in the DOM
    this.heights = new Map(); // seq -> height of an expanded row
    this.selected = -1;
    this.re = null;
    this.stick = false; // keep the end in view (a live tail that follows)
    this.shift = 0; // px let go at the top since the last frame
    this.frame = 0;
    this.rowH = 20;
    viewport.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(viewport);
    this.spacer.addEventListener("click", (e) => this.clicked(e));
  }

  get size() {
    return this.items.length;
  }

  get end() {
    return this.first + this.items.length;
  }

  hit(seq) {
    return this.items[seq - this.first];
  }

  /** Forget every row (a new query); `re` highlights the new query's matches. */
  clear(re = null) {
    this.first = this.end; // numbers are never reused: a stale element can never be mistaken
    this.items = [];
    this.heights.clear();
    this.selected = -1;
    this.re = re;
    this.shift = 0;
    for (const el of this.els.values()) el.remove();
    this.els.clear();
    this.spacer.style.height = "0px";
    this.vp.scrollTop = 0;
  }

  append(hits) {
    for (const h of hits) this.items.push(h);
    const over = this.items.length - MAX_HELD;
    if (over > 0) this.dropFront(over);
    this.schedule();
  }

  dropFront(n) {
    const cut = this.first + n;
    let px = n * this.rowH;
    for (const [seq, h] of this.heights) {
      if (seq < cut) {
        px += h - this.rowH;
        this.heights.delete(seq);
      }
    }
    this.items.splice(0, n);
    this.first = cut;
    this.shift += px;
    if (this.selected < cut) this.selected = -1;
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  /** Top of row `seq` in px. */
  top(seq) {
    let y = (seq - this.first) * this.rowH;
    for (const [s, h] of this.heights) if (s < seq) y += h - this.rowH;
    return y;
  }

  height() {
    let y = this.items.length * this.rowH;
    for (const h of this.heights.values()) y += h - this.rowH;
    return y;
  }

  /** The row at `y` px from the top. */
  seqAt(y) {
    let extra = 0;
    const expanded = [...this.heights.keys()].sort((a, b) => a - b);
    for (const s of expanded) {
      const top = (s - this.first) * this.rowH + extra;
      if (top > y) break;
      const h = this.heights.get(s);
      if (y < top + h) return s;
      extra += h - this.rowH;
    }
    return this.first + Math.floor((y - extra) / this.rowH);
  }

  render() {
    this.frame = 0;
    const css = getComputedStyle(this.vp).getPropertyValue("--row-h");
    this.rowH = Number.parseFloat(css) || this.rowH;
    const total = this.height();
    this.spacer.style.height = `${total}px`;
    if (this.stick) this.vp.scrollTop = total;
    else if (this.shift) this.vp.scrollTop = Math.max(0, this.vp.scrollTop - this.shift);
    this.shift = 0;
    const view = this.vp.clientHeight;
    const top = this.vp.scrollTop;
    const a = Math.max(this.first, this.seqAt(top) - OVERSCAN);
    const b = Math.min(this.end, this.seqAt(top + view) + OVERSCAN + 1);
    for (const [seq, el] of this.els) {
      if (seq < a || seq >= b) {
        el.remove();
        this.els.delete(seq);
      }
    }
    let remeasure = false;
    for (let seq = a; seq < b; seq++) {
      let el = this.els.get(seq);
      if (!el) {
        el = this.build(seq);
        this.els.set(seq, el);
        this.spacer.append(el);
      }
      el.style.top = `${this.top(seq)}px`;
      el.classList.toggle("sel", seq === this.selected);
      if (this.heights.has(seq)) {
        const h = Math.max(this.rowH, el.offsetHeight);
        if (h !== this.heights.get(seq)) {
          this.heights.set(seq, h);
          remeasure = true;
        }
      }
    }
    if (remeasure) this.schedule();
  }

  build(seq) {
    const hit = this.hit(seq);
    const expanded = this.heights.has(seq);
    const el = document.createElement("div");
    el.className = `row lvl-${hit.level ?? "none"}${expanded ? " expanded" : ""}`;
    el.dataset.seq = String(seq);
    el.setAttribute("role", "listitem");
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = localTime(hit);
    const lvl = document.createElement("span");
    lvl.className = "lvl";
    lvl.textContent = hit.level ?? "";
    const host = document.createElement("span");
    host.className = "host";
    host.textContent = hit.host;
    host.title = `${hit.host} ${hit.source}`;
    const line = document.createElement("span");
    line.className = "line";
    const limit = expanded ? EXPANDED_CHARS : CUT_CHARS;
    highlight(line, hit.line.length > limit ? hit.line.slice(0, limit) : hit.line, this.re);
    if (hit.line.length > CUT_CHARS) {
      const more = document.createElement("button");
      more.type = "button";
      more.className = "more";
      more.textContent = expanded
        ? hit.line.length > EXPANDED_CHARS
          ? `… ${(hit.line.length - EXPANDED_CHARS).toLocaleString()} more chars (copy the line from its detail) · collapse`
          : "collapse"
        : `… +${(hit.line.length - CUT_CHARS).toLocaleString()} chars`;
      el.append(ts, lvl, host, line, more);
      return el;
    }
    el.append(ts, lvl, host, line);
    return el;
  }

  rebuild(seq) {
    const el = this.els.get(seq);
    if (el) {
      el.remove();
      this.els.delete(seq);
    }
    this.schedule();
  }

  /** Expand or collapse row `seq`. */
  toggle(seq) {
    if (this.hit(seq) === undefined) return;
    if (this.heights.has(seq)) this.heights.delete(seq);
    else {
      if (this.heights.size >= MAX_EXPANDED) {
        const oldest = this.heights.keys().next().value;
        this.heights.delete(oldest);
        this.rebuild(oldest);
      }
      this.heights.set(seq, this.rowH);
    }
    this.rebuild(seq);
  }

  clicked(e) {
    const row = e.target.closest(".row");
    if (!row) return;
    const seq = Number(row.dataset.seq);
    if (e.target.closest("button.more")) {
      this.toggle(seq);
      return;
    }
    const sel = getSelection();
    if (sel && !sel.isCollapsed) return; // the user selected text: not a click on the row
    this.select(seq);
    this.onOpen(this.hit(seq));
  }

  /** Select row `seq` and scroll it into view. */
  select(seq) {
    if (this.size === 0) return;
    this.selected = Math.min(Math.max(seq, this.first), this.end - 1);
    const top = this.top(this.selected);
    const h = this.heights.get(this.selected) ?? this.rowH;
    if (top < this.vp.scrollTop) this.vp.scrollTop = top;
    else if (top + h > this.vp.scrollTop + this.vp.clientHeight) this.vp.scrollTop = top + h - this.vp.clientHeight;
    this.schedule();
  }

  /** Move the selection by `delta` rows (j/k); the first row in view when none is selected. */
  move(delta) {
    if (this.selected < this.first) this.select(this.seqAt(this.vp.scrollTop));
    else this.select(this.selected + delta);
  }

  /** Whether the end of the list is in view (within a row). */
  atEnd() {
    return this.vp.scrollHeight - this.vp.scrollTop - this.vp.clientHeight <= this.rowH;
  }
}

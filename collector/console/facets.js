// Facets: the top values of one field over the whole match set, exact (/v1/facets counts every
// matching record, kibana#87637 counted the first 500 hits), shown as "k of N" values. The
// field is host, source, level or any parsed field; a value's button includes it in the query,
// its "−" button excludes it (`onPick(field, value, include)`).

import { getJSON } from "./api.js";

const TOP = 10;
const PRESETS = ["host", "source", "level"];

export class Facets {
  constructor(aside, { onPick }) {
    this.aside = aside;
    this.onPick = onPick;
    this.field = "host";
    this.last = null; // [filters, signal] of the last run, to run again for another field
    this.head = document.createElement("div");
    this.head.className = "facet-head";
    this.select = document.createElement("select");
    this.select.setAttribute("aria-label", "facet field");
    for (const f of [...PRESETS, "field…"]) {
      const o = document.createElement("option");
      o.value = f;
      o.textContent = f;
      this.select.append(o);
    }
    this.custom = document.createElement("input");
    this.custom.placeholder = "field name";
    this.custom.hidden = true;
    this.custom.setAttribute("aria-label", "field name");
    this.body = document.createElement("div");
    this.body.className = "facet-body";
    this.head.append(this.select, this.custom);
    aside.replaceChildren(this.head, this.body);
    this.select.addEventListener("change", () => {
      const custom = this.select.value === "field…";
      this.custom.hidden = !custom;
      if (custom) this.custom.focus();
      else this.use(this.select.value);
    });
    this.custom.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && this.custom.value.trim()) this.use(this.custom.value.trim());
    });
  }

  use(field) {
    this.field = field;
    if (this.last) this.run(...this.last);
  }

  clear() {
    this.last = null;
    this.aside.dataset.state = "";
    this.body.replaceChildren();
  }

  note(text, cls = "note") {
    this.aside.dataset.state = cls === "error" ? "error" : "loading";
    const p = document.createElement("p");
    p.className = cls;
    p.textContent = text;
    this.body.replaceChildren(p);
  }

  async run(filters, signal) {
    this.last = [filters, signal];
    const field = this.field;
    this.note("counting…");
    let answer;
    try {
      answer = await getJSON("/v1/facets", [...filters, ["field", field], ["limit", String(TOP)]], signal);
    } catch (err) {
      if (!signal.aborted) this.note(`facets: ${err.message}`, "error");
      return;
    }
    if (signal.aborted || field !== this.field) return;
    this.draw(answer);
  }

  draw(a) {
    const title = document.createElement("p");
    title.className = "facet-title";
    const distinct = `${a.distinct.toLocaleString()}${a.capped ? "+" : ""}`;
    title.textContent = `${a.field}: ${a.values.length} of ${distinct} values`;
    const sub = document.createElement("p");
    sub.className = "note";
    sub.textContent =
      `${a.total.toLocaleString()} records` + (a.missing ? ` · ${a.missing.toLocaleString()} without ${a.field}` : "");
    const list = document.createElement("ul");
    list.className = "facet-list";
    const top = Math.max(1, ...a.values.map((v) => v.count));
    for (const v of a.values) {
      const li = document.createElement("li");
      li.dataset.value = String(v.value);
      li.dataset.count = String(v.count);
      const pick = document.createElement("button");
      pick.type = "button";
      pick.className = "facet-value";
      pick.title = `only ${a.field} = ${v.value}`;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = v.value === null ? "(null)" : String(v.value);
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = v.count.toLocaleString();
      const bar = document.createElement("span");
      bar.className = "facet-bar";
      bar.style.width = `${(100 * v.count) / top}%`;
      pick.append(bar, name, count);
      pick.addEventListener("click", () => this.onPick(a.field, v.value, true));
      const out = document.createElement("button");
      out.type = "button";
      out.className = "facet-out";
      out.textContent = "−";
      out.title = `exclude ${a.field} = ${v.value}`;
      out.setAttribute("aria-label", out.title);
      out.addEventListener("click", () => this.onPick(a.field, v.value, false));
      li.append(pick, out);
      list.append(li);
    }
    this.body.replaceChildren(title, sub, list);
    this.aside.dataset.state = "ready";
  }
}

// A record's detail: where it is (topic, partition, offset), its exact time, its fields as a
// table (nested objects flattened to the dotted names `where` understands), copy the line or
// the record's JSON, include or exclude a value (`onPick(field, value, include)`), and its
// context: the records before and after it from the same host and source, the hit marked.

import { streamRows } from "./api.js";
import { highlight, localTime } from "./rows.js";

const CONTEXT = 10;
// Nested objects are flattened this deep; deeper values show as JSON.
const MAX_DEPTH = 4;
// The names `where` can say without quoting (collector/filters/where.py: _NAME_RE).
const NAME = /^[A-Za-z_@$][A-Za-z0-9_@$-]*(?:\.[A-Za-z0-9_@$-]+)*$/;

/** The record as JSON, the API's field order, its time exact. */
export function recordJson(hit) {
  const { topic, partition, offset, host, source, line, fields, level } = hit;
  const body = JSON.stringify({ topic, partition, offset, ts: 0, host, source, line, fields, level });
  return body.replace('"ts":0', `"ts":${hit.tsText ?? hit.ts}`);
}

function flatten(obj, prefix, out, depth) {
  for (const [k, v] of Object.entries(obj)) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && depth < MAX_DEPTH) flatten(v, name, out, depth + 1);
    else out.push([name, v]);
  }
  return out;
}

/** RFC 3339 in UTC with the nanoseconds of the record. */
function exactTime(hit) {
  const t = hit.tsText ?? String(hit.ts);
  const iso = new Date(Number(t.slice(0, -6) || 0)).toISOString();
  return `${iso.slice(0, 19)}.${t.slice(-9).padStart(9, "0")}Z`;
}

export class Detail {
  constructor(aside, { onPick, onCopy, onClose }) {
    this.aside = aside;
    this.onPick = onPick;
    this.onCopy = onCopy;
    this.onClose = onClose;
    this.ctrl = null;
    this.hit = null;
  }

  get open() {
    return !this.aside.hidden;
  }

  hide() {
    this.ctrl?.abort();
    this.hit = null;
    this.aside.hidden = true;
    this.aside.replaceChildren();
  }

  button(text, title, action) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.title = title;
    b.addEventListener("click", action);
    return b;
  }

  show(hit, re) {
    this.ctrl?.abort();
    this.hit = hit;
    const head = document.createElement("div");
    head.className = "detail-head";
    const where = document.createElement("h2");
    where.textContent = `${hit.topic} · partition ${hit.partition} · offset ${hit.offset}`;
    head.append(where, this.button("×", "close (Esc)", () => this.onClose()));
    const when = document.createElement("p");
    when.className = "note";
    when.textContent = `${localTime(hit)} local · ${exactTime(hit)}`;
    const actions = document.createElement("div");
    actions.className = "detail-actions";
    const context = document.createElement("div");
    context.className = "context";
    actions.append(
      this.button("Copy line", "copy the raw line", () => this.onCopy(hit.line, "line")),
      this.button("Copy JSON", "copy the record as JSON", () => this.onCopy(recordJson(hit), "JSON")),
      this.button("Context", `${CONTEXT} records before and after, same host and source`, () => this.context(hit, context)),
    );
    const line = document.createElement("pre");
    line.className = "detail-line";
    highlight(line, hit.line, re);
    const table = document.createElement("table");
    table.className = "fields";
    const rows = [
      ["host", hit.host],
      ["source", hit.source],
      ["level", hit.level],
      ...flatten(hit.fields ?? {}, "", [], 0).map(([k, v]) => [
        ["host", "source", "level", "line", "ts"].includes(k.split(".")[0]) ? `fields.${k}` : k,
        v,
      ]),
    ];
    for (const [name, value] of rows) table.append(this.fieldRow(name, value));
    this.aside.replaceChildren(head, when, actions, line, table, context);
    this.aside.hidden = false;
  }

  fieldRow(name, value) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = name;
    th.scope = "row";
    const td = document.createElement("td");
    const scalar = value === null || ["string", "number", "boolean"].includes(typeof value);
    td.textContent = value === null ? "null" : scalar ? String(value) : JSON.stringify(value);
    const ops = document.createElement("td");
    ops.className = "ops";
    if ((typeof value === "string" || typeof value === "number") && NAME.test(name)) {
      ops.append(
        this.button("+", `only records with ${name} = ${value}`, () => this.onPick(name, value, true)),
        this.button("−", `records without ${name} = ${value}`, () => this.onPick(name, value, false)),
      );
    }
    tr.append(th, td, ops);
    return tr;
  }

  async context(hit, box) {
    this.ctrl?.abort();
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = "reading context…";
    box.replaceChildren(note);
    const list = document.createElement("ol");
    list.className = "context-list";
    const path = `/v1/topics/${encodeURIComponent(hit.topic)}/partitions/${hit.partition}/context`;
    const params = [["offset", String(hit.offset)], ["before", String(CONTEXT)], ["after", String(CONTEXT)]];
    try {
      await streamRows(path, params, ctrl.signal, (rows) => {
        for (const r of rows) {
          if (r.offset === undefined) continue;
          const li = document.createElement("li");
          const self = r.offset === hit.offset && r.partition === hit.partition;
          li.className = self ? "ctx-hit" : "";
          li.dataset.offset = String(r.offset);
          const ts = document.createElement("span");
          ts.className = "ts";
          ts.textContent = localTime(r);
          const text = document.createElement("span");
          text.className = "line";
          text.textContent = r.line;
          li.append(ts, text);
          list.append(li);
        }
      });
    } catch (err) {
      if (ctrl.signal.aborted) return;
      note.textContent = `context: ${err.message}`;
      note.className = "error";
      return;
    }
    note.textContent = `${list.children.length} records around offset ${hit.offset} (${hit.host} ${hit.source})`;
    box.replaceChildren(note, list);
    list.querySelector(".ctx-hit")?.scrollIntoView({ block: "nearest" });
  }
}

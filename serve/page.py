"""``GET /``: one self-contained page (no external scripts, styles or fonts) to try the models.

It lists the served models (Triton's repository index), and for each takes a dropped or picked
image, or a pasted 1-D signal, and shows the top-k labels the classify endpoint answers.
"""
from __future__ import annotations

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cnnbp serve</title>
<link rel="icon" href="data:,">
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:52rem;
padding:0 1rem;color:#1b1f24;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .2rem}.muted{color:#5f6b7a}
.card{background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:1rem;margin:1rem 0}
.card h2{font-size:1.1rem;margin:0 0 .5rem}
.drop{display:block;border:2px dashed #9aa5b1;border-radius:6px;padding:1.2rem;margin:.6rem 0;
text-align:center;cursor:pointer}
.classes{display:flex;flex-wrap:wrap;gap:.25rem;margin:.3rem 0 .6rem;padding:0;list-style:none}
.classes li{background:#eef1f4;border-radius:4px;padding:0 .4rem;font-size:.85rem}
.result{margin-top:.6rem}.report{font-size:.85rem;font-weight:normal;margin-left:.4rem}
.drop.over{background:#eef5ff;border-color:#3b82f6}
textarea{display:block;width:100%;box-sizing:border-box;font-family:ui-monospace,monospace;
min-height:4rem;margin:.6rem 0}
table{border-collapse:collapse;margin-top:.6rem;width:100%}td{padding:.15rem .4rem}
.bar{background:#3b82f6;height:.7rem;border-radius:3px}.err{color:#b42318}
img.preview{display:block;height:96px;image-rendering:pixelated;margin-top:.5rem}
</style></head><body>
<h1>cnnbp serve</h1>
<p class="muted">Open Inference Protocol at <code>/v2</code>; each model below answers
<code>POST /v2/models/NAME/classify</code>; its bundle's report shows how it was trained and
checked.</p>
<p id="auth" hidden><label>Bearer token <input id="token" type="password" autocomplete="off">
</label> <button id="use">Use</button></p>
<div id="models"><p class="muted">Loading the model list…</p></div>
<script>
"use strict";
const NEEDS_TOKEN = __NEEDS_TOKEN__;
const $ = (tag, attrs = {}, text) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
};
function headers(extra = {}) {
  const t = sessionStorage.getItem("cnnbp-token");
  return t ? {...extra, Authorization: "Bearer " + t} : extra;
}
async function errorOf(r) {
  try { return (await r.json()).error || r.statusText; } catch (e) { return r.statusText; }
}
function show(out, doc) {
  out.replaceChildren();
  const table = $("table");
  for (const t of doc.top_k) {
    const row = table.insertRow();
    row.insertCell().textContent = t.label;
    row.insertCell().textContent = (100 * t.probability).toFixed(1) + "%";
    const bar = $("div", {class: "bar"});
    bar.style.width = Math.max(1, 100 * t.probability) + "%";
    const cell = row.insertCell(); cell.style.width = "60%"; cell.append(bar);
  }
  out.append(table);
}
async function classify(name, body, type, out) {
  out.replaceChildren($("span", {class: "muted"}, "classifying…"));
  try {
    const r = await fetch("/v2/models/" + encodeURIComponent(name) + "/classify?top_k=5",
                          {method: "POST", body, headers: headers({"Content-Type": type})});
    if (!r.ok) throw new Error(r.status + ": " + await errorOf(r));
    show(out, await r.json());
  } catch (e) { out.replaceChildren($("p", {class: "err"}, String(e.message || e))); }
}
async function classNames(m, list) {
  try {
    const r = await fetch("/v2/models/" + encodeURIComponent(m.name), {headers: headers()});
    if (!r.ok) throw new Error(r.status + ": " + await errorOf(r));
    const names = ((await r.json()).parameters || {}).class_names || [];
    list.replaceChildren(...names.map(n => $("li", {}, n)));
  } catch (e) { list.replaceChildren($("li", {class: "err"}, String(e.message || e))); }
}
async function openReport(e, url) {
  // a link sends no Authorization header: with a token, fetch the page and show it from a blob
  if (!sessionStorage.getItem("cnnbp-token")) return;
  e.preventDefault();
  const tab = window.open("", "_blank");
  const r = await fetch(url, {headers: headers()});
  if (!tab) return;
  if (!r.ok) {
    const pre = tab.document.createElement("pre");
    pre.textContent = r.status + ": " + await errorOf(r);
    tab.document.body.append(pre);
    return;
  }
  // a sandboxed frame (no scripts, an origin of its own): the report cannot read the token
  const frame = tab.document.createElement("iframe");
  frame.setAttribute("sandbox", "");
  frame.style.cssText = "border:0;position:fixed;inset:0;width:100%;height:100%";
  frame.srcdoc = await r.text();
  tab.document.body.append(frame);
}
function card(m) {
  const c = $("section", {class: "card", "data-model": m.name});
  const list = $("ul", {class: "classes", "aria-label": "class names"});
  const report = $("a", {class: "report", href: "/v2/models/" + encodeURIComponent(m.name) +
                          "/report.html", target: "_blank", rel: "noopener"}, "report");
  report.addEventListener("click", e => openReport(e, report.href));
  const title = $("h2", {}, m.name + " ");
  title.append(report);
  c.append(title,
           $("p", {class: "muted"}, m.domain + " input " + m.input_shape.join("×") + ", " +
             m.classes + " classes:"), list);
  classNames(m, list);
  const out = $("div", {class: "result"});
  if (m.domain === "image") {
    const drop = $("label", {class: "drop"}, "Drop a PNG or JPEG here, or click to pick one");
    const input = $("input", {type: "file", accept: "image/png,image/jpeg", hidden: ""});
    const preview = $("img", {class: "preview", alt: ""});
    preview.hidden = true;
    const send = file => {
      preview.src = URL.createObjectURL(file); preview.hidden = false;
      classify(m.name, file, file.type || "image/png", out);
    };
    input.addEventListener("change", () => input.files[0] && send(input.files[0]));
    drop.append(input);
    drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", e => {
      e.preventDefault(); drop.classList.remove("over");
      if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]);
    });
    c.append(drop, preview);
  } else if (m.domain === "signal") {
    const text = $("textarea", {placeholder: "Paste " + m.input_shape[0] +
                                " numbers (JSON list, or separated by commas or spaces)"});
    const go = $("button", {}, "Classify");
    go.addEventListener("click", () => {
      const raw = text.value.trim();
      let values;
      try { values = raw.startsWith("[") ? JSON.parse(raw) : raw.split(/[\\s,]+/).map(Number); }
      catch (e) { out.replaceChildren($("p", {class: "err"}, "not a JSON list: " + e.message));
                  return; }
      classify(m.name, JSON.stringify({signal: values}), "application/json", out);
    });
    c.append(text, go);
  } else {
    c.append($("p", {class: "muted"}, "takes normalized tensors: use /v2/models/" + m.name +
             "/infer"));
  }
  c.append(out);
  return c;
}
async function load() {
  const box = document.getElementById("models");
  try {
    const r = await fetch("/v2/repository/index", {method: "POST", headers: headers()});
    if (r.status === 401) {
      document.getElementById("auth").hidden = false;
      box.replaceChildren($("p", {class: "muted"}, "This server needs its bearer token."));
      return;
    }
    if (!r.ok) throw new Error(r.status + ": " + await errorOf(r));
    const models = await r.json();
    box.replaceChildren(...models.map(card));
    if (!models.length) box.replaceChildren($("p", {}, "No models are served."));
  } catch (e) { box.replaceChildren($("p", {class: "err"}, String(e.message || e))); }
}
document.getElementById("use").addEventListener("click", () => {
  sessionStorage.setItem("cnnbp-token", document.getElementById("token").value);
  load();
});
if (NEEDS_TOKEN) document.getElementById("auth").hidden = false;
load();
</script></body></html>
"""


def page(needs_token: bool) -> bytes:
    """The single-file web page; ``needs_token`` shows its token field."""
    return _PAGE.replace("__NEEDS_TOKEN__", "true" if needs_token else "false").encode()

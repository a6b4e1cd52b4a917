// A line chart as SVG with a movable vertical marker (curation_app/components/curve_chart.py).
// The lines are drawn again only when their key or the width changes; a new marker only moves the marker.
const NS = "http://www.w3.org/2000/svg";
const M = { l: 72, r: 16, t: 12, b: 52 }; // plot margins, CSS pixels (the legend, when any, adds to the right)
const LEGEND_W = 150;

function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

// 1-2-5 steps covering [lo, hi] with about n ticks
function ticks(lo, hi, n) {
  const span = Math.max(hi - lo, 1e-12);
  const raw = span / Math.max(n, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(12));
  return { values: out, step };
}

// the fewest decimals that write every multiple of step exactly (0.025 -> 3, 0.05 -> 2, 10 -> 0)
function decimals(step) {
  for (let d = 0; d < 6; d++) {
    const v = step * Math.pow(10, d);
    if (Math.abs(v - Math.round(v)) < 1e-6 * Math.max(1, v)) return d;
  }
  return 6;
}

function fmtY(v, d, step) {
  if (d.y_percent) return (100 * v).toFixed(Math.max(0, decimals(100 * step))) + "%";
  return v.toFixed(decimals(step));
}

// class names come from the user's data: never as markup
function esc(v) {
  return String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function nearest(xs, x) {
  let lo = 0, hi = xs.length - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] < x) lo = mid; else hi = mid; }
  return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
}

function setup(S, parent) {
  S.root = document.createElement("div");
  S.root.className = "cs-curve";
  S.title = document.createElement("div");
  S.title.className = "cs-curve-title";
  S.svg = el("svg", { class: "cs-curve-svg" });
  S.tip = document.createElement("div");
  S.tip.className = "cs-curve-tip";
  S.root.append(S.title, S.svg, S.tip);
  parent.appendChild(S.root);
  S.svg.addEventListener("mousemove", (ev) => hover(S, ev));
  S.svg.addEventListener("mouseleave", () => { S.tip.style.display = "none"; if (S.hoverLine) S.hoverLine.style.display = "none"; });
  new ResizeObserver(() => { if (S.data && S.root.clientWidth !== S.width) draw(S); }).observe(S.root);
}

function draw(S) {
  const d = S.data;
  const series = d.series || [];
  S.width = S.root.clientWidth || 700;
  const legend = series.length > 1 ? LEGEND_W : 0;
  const W = S.width, H = d.height;
  const pw = Math.max(W - M.l - M.r - legend, 50), ph = Math.max(H - M.t - M.b, 50);
  S.svg.setAttribute("width", W);
  S.svg.setAttribute("height", H);
  S.svg.replaceChildren();
  S.title.textContent = d.title || "";
  let x0 = Infinity, x1 = -Infinity, y1 = 0;
  for (const s of series) for (let i = 0; i < s.x.length; i++) {
    x0 = Math.min(x0, s.x[i]); x1 = Math.max(x1, s.x[i]); y1 = Math.max(y1, s.y[i]);
  }
  if (!isFinite(x0)) { x0 = 0; x1 = 1; }
  if (x1 <= x0) x1 = x0 + 1;
  const yt = ticks(0, (y1 || 1) * 1.05, 6);
  const yTop = Math.max(yt.values[yt.values.length - 1], (y1 || 1) * 1.05);
  const X = (v) => M.l + ((v - x0) / (x1 - x0)) * pw;
  const Y = (v) => M.t + ph - (v / yTop) * ph;
  S.scale = { x0, x1, pw, ph, X, Y, yStep: yt.step };

  const grid = el("g", { class: "cs-curve-grid" }, S.svg);
  for (const v of yt.values) {
    el("line", { x1: M.l, x2: M.l + pw, y1: Y(v), y2: Y(v) }, grid);
    const t = el("text", { x: M.l - 8, y: Y(v) + 4, "text-anchor": "end", class: "cs-curve-tick" }, S.svg);
    t.textContent = fmtY(v, d, yt.step);
  }
  const xt = ticks(x0, x1, Math.max(3, Math.floor(pw / 90)));
  for (const v of xt.values) {
    el("line", { x1: X(v), x2: X(v), y1: M.t, y2: M.t + ph }, grid);
    const t = el("text", { x: X(v), y: M.t + ph + 18, "text-anchor": "middle", class: "cs-curve-tick" }, S.svg);
    t.textContent = v.toFixed(decimals(xt.step));
  }
  el("rect", { x: M.l, y: M.t, width: pw, height: ph, class: "cs-curve-frame" }, S.svg);
  const xl = el("text", { x: M.l + pw / 2, y: H - 8, "text-anchor": "middle", class: "cs-curve-label" }, S.svg);
  xl.textContent = d.x_title || "";
  const yl = el("text", { x: 16, y: M.t + ph / 2, "text-anchor": "middle", class: "cs-curve-label",
    transform: `rotate(-90 16 ${M.t + ph / 2})` }, S.svg);
  yl.textContent = d.y_title || "";

  // thin lines first, the thick "all" line on top
  const order = series.map((s, i) => i).sort((a, b) => series[a].width - series[b].width);
  for (const i of order) {
    const s = series[i];
    let p = "";
    for (let j = 0; j < s.x.length; j++) p += (j ? "L" : "M") + X(s.x[j]).toFixed(1) + "," + Y(s.y[j]).toFixed(1);
    el("path", { d: p, fill: "none", stroke: s.colour, "stroke-width": s.width, "stroke-linejoin": "round" }, S.svg);
  }
  if (legend) {
    const g = el("g", { class: "cs-curve-legend" }, S.svg);
    series.forEach((s, i) => {
      const y = M.t + 8 + i * 20;
      el("line", { x1: M.l + pw + 14, x2: M.l + pw + 36, y1: y, y2: y, stroke: s.colour, "stroke-width": Math.max(2, s.width) }, g);
      const t = el("text", { x: M.l + pw + 42, y: y + 4, class: "cs-curve-tick" }, g);
      t.textContent = s.name;
    });
  }
  S.hoverLine = el("line", { y1: M.t, y2: M.t + ph, class: "cs-curve-hover" }, S.svg);
  S.hoverLine.style.display = "none";
  S.marker = el("g", {}, S.svg);
  S.linesKey = d.lines_key;
  drawMarker(S);
}

function drawMarker(S) {
  const d = S.data, sc = S.scale;
  S.marker.replaceChildren();
  if (d.marker == null) return;
  const v = Math.min(Math.max(d.marker.x, sc.x0), sc.x1);
  const x = sc.X(v);
  el("line", { x1: x, x2: x, y1: M.t, y2: M.t + sc.ph, class: "cs-curve-marker-line" }, S.marker);
  const t = el("text", { x: x - 6, y: M.t + 14, "text-anchor": "end", class: "cs-curve-marker", "data-curve-marker": "" }, S.marker);
  t.textContent = d.marker.text;
}

function hover(S, ev) {
  const d = S.data, sc = S.scale, series = d.series || [];
  if (!sc || !series.length) return;
  const r = S.svg.getBoundingClientRect();
  const px = ev.clientX - r.left;
  if (px < M.l || px > M.l + sc.pw) { S.tip.style.display = "none"; S.hoverLine.style.display = "none"; return; }
  const xv = sc.x0 + ((px - M.l) / sc.pw) * (sc.x1 - sc.x0);
  const rows = [];
  let at = null;
  for (const s of series) {
    if (!s.x.length) continue;
    const j = nearest(s.x, xv);
    at = at == null ? s.x[j] : at;
    const n = s.n ? ` (${Math.round(s.n[j]).toLocaleString("en-US")})` : "";
    rows.push(`<div><span class="cs-curve-swatch" style="background:${esc(s.colour)}"></span>${esc(s.name)}: ${fmtY(s.y[j], d, sc.yStep / 100)}${n}</div>`);
  }
  S.hoverLine.setAttribute("x1", sc.X(at));
  S.hoverLine.setAttribute("x2", sc.X(at));
  S.hoverLine.style.display = "";
  S.tip.innerHTML = `<div class="cs-curve-tip-head">${esc(d.hover_x || "x")} ${at.toFixed(4)}</div>` + rows.join("");
  S.tip.style.display = "block";
  const left = Math.min(px + 14, r.width - S.tip.offsetWidth - 4);
  S.tip.style.left = `${Math.max(0, left)}px`;
  S.tip.style.top = `${Math.max(0, ev.clientY - r.top - 10 + S.title.offsetHeight)}px`;
}

export default function (component) {
  const { data, parentElement } = component;
  const S = parentElement.__curveChart || (parentElement.__curveChart = {});
  if (!S.root) setup(S, parentElement);
  S.data = data;
  if (S.linesKey !== data.lines_key || S.root.clientWidth !== S.width) draw(S);
  else drawMarker(S);
}

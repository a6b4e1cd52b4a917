// The Map page's canvas viewer (a Streamlit v2 component).  Every point is written as pixels into one
// ImageData (fast in software rendering, also for 1,000,000 points); pan (drag) and zoom (wheel) redraw in the
// browser without a server round trip.  The positions come once per run from a URL (an octet file Streamlit
// serves from memory), the colouring from a second, smaller URL; both are kept here between reruns, so a
// re-colour fetches only the colour file; the example ids come once per run from a third URL (fetched after the
// first draw).  A box or a free-hand lasso is sent back as a region in map coordinates (never a list of points);
// the hovered point's index is sent after the pointer rests on it, so the server can show its card (and send
// back its thumbnail for the tooltip).
const LASSO_MAX = 400; // vertices a lasso is thinned to before it is sent (the server accepts up to 2000)
const POS_FIELDS = 4; // x, y, class code, cluster (uint16 each)

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`map data ${url}: HTTP ${r.status}`);
  return await r.arrayBuffer();
}

function hexToABGR(hex) {
  const h = hex.replace("#", "");
  const r = parseInt(h.slice(0, 2), 16), g = parseInt(h.slice(2, 4), 16), b = parseInt(h.slice(4, 6), 16);
  return (255 << 24) | (b << 16) | (g << 8) | r; // little-endian RGBA in one uint32
}

function buildGrid(S) {
  // a uniform grid over [0,1]^2 (counting sort of the point indices by cell): nearest-point lookup for hover
  const G = S.n > 200000 ? 512 : 256, n = S.n, cell = new Uint32Array(n), count = new Uint32Array(G * G + 1);
  for (let i = 0; i < n; i++) {
    const c = Math.min(G - 1, (S.u[i] * G) | 0) * G + Math.min(G - 1, (S.v[i] * G) | 0);
    cell[i] = c;
    count[c + 1]++;
  }
  for (let c = 0; c < G * G; c++) count[c + 1] += count[c];
  const fill = count.slice(0, G * G), order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[fill[cell[i]]++] = i;
  S.grid = { G, start: count, order };
}

function nearest(S, u, v, r) {
  const { G, start, order } = S.grid;
  const c0 = Math.max(0, Math.floor((u - r) * G)), c1 = Math.min(G - 1, Math.floor((u + r) * G));
  const r0 = Math.max(0, Math.floor((v - r) * G)), r1 = Math.min(G - 1, Math.floor((v + r) * G));
  let best = -1, bd = r * r;
  for (let cx = c0; cx <= c1; cx++)
    for (let cy = r0; cy <= r1; cy++) {
      const c = cx * G + cy;
      for (let k = start[c]; k < start[c + 1]; k++) {
        const i = order[k], du = S.u[i] - u, dv = S.v[i] - v, d = du * du + dv * dv;
        if (d <= bd) { bd = d; best = i; }
      }
    }
  return best;
}

function draw(S) {
  const t0 = performance.now();
  const W = S.canvas.width, H = S.canvas.height;
  if (!S.image || S.image.width !== W || S.image.height !== H) {
    S.image = S.ctx.createImageData(W, H);
    S.buf = new Uint32Array(S.image.data.buffer);
  }
  const buf = S.buf;
  buf.fill(S.background);
  if (S.u && S.codes) {
    const n = S.n, u = S.u, v = S.v, codes = S.codes, pal = S.palette32, k = S.scale * S.side;
    // bigger points where there are few (a small run) or when zoomed in; 1 pixel at a million
    const base = S.n <= 5000 ? 4 : S.n <= 250000 ? 2 : 1;
    const ox = S.ox, oy = S.oy, size = base + (S.scale > 3 ? 1 : 0);
    const top = S.topCode;
    for (let pass = 0; pass < (top >= 0 ? 2 : 1); pass++) {
      for (let i = 0; i < n; i++) {
        const code = codes[i];
        if (pass === 0 ? code === top : code !== top) continue;
        const px = (u[i] * k + ox) | 0, py = ((1 - v[i]) * k + oy) | 0;
        if (px < 0 || py < 0 || px + size > W || py + size > H) continue;
        const col = pal[code];
        let o = py * W + px;
        for (let a = 0; a < size; a++, o += W) for (let b = 0; b < size; b++) buf[o + b] = col;
      }
    }
  }
  S.ctx.putImageData(S.image, 0, 0);
  S.drawMs = performance.now() - t0;
  S.root.dataset.drawMs = S.drawMs.toFixed(1);
  drawRegion(S);
}

function toScreen(S, u, v) {
  const k = S.scale * S.side;
  return [u * k + S.ox, (1 - v) * k + S.oy];
}

function toUnit(S, px, py) {
  const k = S.scale * S.side;
  return [(px - S.ox) / k, 1 - (py - S.oy) / k];
}

function mapToScreen(S, x, y) {
  const b = S.bounds;
  return toScreen(S, (x - b[0]) / (b[1] - b[0]), (y - b[2]) / (b[3] - b[2]));
}

function drawLasso(S, pts) {
  // pts: screen points (while drawing) or null (hide)
  if (!pts || pts.length < 2) { S.lassoEl.style.display = "none"; return; }
  const attr = pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  S.lassoEl.querySelectorAll("polygon").forEach((p) => p.setAttribute("points", attr)); // white halo, red line
  S.lassoEl.style.display = "block";
}

function drawRegion(S) {
  const box = S.boxEl, r = S.region;
  if (!r || !S.bounds) { box.style.display = "none"; drawLasso(S, null); return; }
  if (r.kind === "lasso") {
    box.style.display = "none";
    drawLasso(S, r.x.map((x, i) => mapToScreen(S, x, r.y[i])));
    return;
  }
  drawLasso(S, null);
  const b = S.bounds;
  const [ax, ay] = toScreen(S, (r.x0 - b[0]) / (b[1] - b[0]), (r.y1 - b[2]) / (b[3] - b[2]));
  const [bx, by] = toScreen(S, (r.x1 - b[0]) / (b[1] - b[0]), (r.y0 - b[2]) / (b[3] - b[2]));
  Object.assign(box.style, {
    display: "block", left: `${ax}px`, top: `${ay}px`, width: `${bx - ax}px`, height: `${by - ay}px`,
  });
}

function resetView(S) {
  const W = S.canvas.width, H = S.canvas.height;
  S.side = Math.min(W, H) - 16;
  S.scale = 1;
  S.ox = (W - S.side) / 2;
  S.oy = (H - S.side) / 2;
}

// zoom and pan so that a box in map coordinates [x0, x1, y0, y1] fills the canvas (a duplicate group opened
// from the Redundancy page); at most 64x, the centre of the box in the centre of the canvas
function fitBox(S, box) {
  const b = S.bounds, W = S.canvas.width, H = S.canvas.height;
  const u0 = (box[0] - b[0]) / (b[1] - b[0]), u1 = (box[1] - b[0]) / (b[1] - b[0]);
  const v0 = (box[2] - b[2]) / (b[3] - b[2]), v1 = (box[3] - b[2]) / (b[3] - b[2]);
  resetView(S);
  S.scale = Math.min(64, Math.max(1, 1 / Math.max(u1 - u0, v1 - v0, 1e-6)));
  const k = S.scale * S.side;
  S.ox = W / 2 - ((u0 + u1) / 2) * k;
  S.oy = H / 2 - (1 - (v0 + v1) / 2) * k;
}

function setup(S, parent, setStateValue) {
  const root = parent.querySelector(".mc-root");
  S.root = root;
  S.canvas = root.querySelector("canvas");
  S.ctx = S.canvas.getContext("2d");
  S.tip = root.querySelector(".mc-tip");
  S.boxEl = root.querySelector(".mc-box");
  S.lassoEl = root.querySelector(".mc-lasso");
  S.lassoPoly = S.lassoEl.querySelector(".mc-line");
  S.tipText = root.querySelector(".mc-text");
  S.tipImg = root.querySelector(".mc-thumb");
  S.status = root.querySelector(".mc-status");
  S.mode = "pan";
  S.background = hexToABGR("#ffffff");
  S.setStateValue = setStateValue;
  const W = Math.max(300, Math.floor(root.clientWidth || 900));
  S.canvas.width = W;
  S.canvas.height = S.height;
  resetView(S);
  const tools = root.querySelectorAll(".mc-tool");
  const setMode = (m) => {
    S.mode = m;
    tools.forEach((t) => t.classList.toggle("on", t.dataset.mode === m));
    S.canvas.style.cursor = m === "pan" ? "grab" : "crosshair";
  };
  tools.forEach((t) => t.addEventListener("click", () => {
    if (t.dataset.mode === "reset") { resetView(S); draw(S); } else if (t.dataset.mode === "clear") {
      S.region = null; drawRegion(S); S.setStateValue("region", null);
    } else setMode(t.dataset.mode);
  }));
  setMode("pan");
  let drag = null;
  const local = (e) => { const r = S.canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  S.canvas.addEventListener("pointerdown", (e) => {
    S.canvas.setPointerCapture(e.pointerId);
    const [x, y] = local(e);
    const lasso = S.mode === "lasso" && !e.shiftKey;
    drag = { x, y, ox: S.ox, oy: S.oy, select: !lasso && (S.mode === "select" || e.shiftKey), lasso, moved: false,
      pts: [[x, y]] };
  });
  S.canvas.addEventListener("pointermove", (e) => {
    const [x, y] = local(e);
    if (drag) {
      drag.moved = drag.moved || Math.abs(x - drag.x) + Math.abs(y - drag.y) > 3;
      if (drag.lasso) {
        const [lx, ly] = drag.pts[drag.pts.length - 1];
        if (Math.abs(x - lx) + Math.abs(y - ly) >= 3) drag.pts.push([x, y]);
        S.boxEl.style.display = "none";
        drawLasso(S, drag.pts);
      } else if (drag.select) {
        Object.assign(S.boxEl.style, {
          display: "block", left: `${Math.min(x, drag.x)}px`, top: `${Math.min(y, drag.y)}px`,
          width: `${Math.abs(x - drag.x)}px`, height: `${Math.abs(y - drag.y)}px`,
        });
      } else {
        S.ox = drag.ox + x - drag.x;
        S.oy = drag.oy + y - drag.y;
        if (!S.pending) { S.pending = true; requestAnimationFrame(() => { S.pending = false; draw(S); }); }
      }
      S.tip.style.display = "none";
      return;
    }
    hover(S, x, y);
  });
  S.canvas.addEventListener("pointerup", (e) => {
    const [x, y] = local(e);
    const d = drag;
    drag = null;
    if (!d) return;
    if (d.lasso && d.moved && d.pts.length >= 3 && S.bounds) {
      d.pts.push([x, y]);
      const step = Math.ceil(d.pts.length / LASSO_MAX), b = S.bounds, xs = [], ys = [];
      for (let k = 0; k < d.pts.length; k += step) {
        const [u, v] = toUnit(S, d.pts[k][0], d.pts[k][1]);
        xs.push(b[0] + u * (b[1] - b[0]));
        ys.push(b[2] + v * (b[3] - b[2]));
      }
      if (xs.length >= 3) {
        S.region = { kind: "lasso", x: xs, y: ys };
        drawRegion(S);
        S.setStateValue("region", S.region);
      } else drawRegion(S);
    } else if (d.lasso && d.moved) drawRegion(S);
    else if (d.select && d.moved && S.bounds) {
      const b = S.bounds;
      const [u0, v1] = toUnit(S, Math.min(x, d.x), Math.min(y, d.y));
      const [u1, v0] = toUnit(S, Math.max(x, d.x), Math.max(y, d.y));
      S.region = {
        x0: b[0] + u0 * (b[1] - b[0]), x1: b[0] + u1 * (b[1] - b[0]),
        y0: b[2] + v0 * (b[3] - b[2]), y1: b[2] + v1 * (b[3] - b[2]),
      };
      drawRegion(S);
      S.setStateValue("region", S.region);
    } else if (!d.moved && S.hovered >= 0) {
      clearTimeout(S.rest); // a click: the card of this point now
      if (S.sentHover !== S.hovered) { S.sentHover = S.hovered; S.setStateValue("hovered", S.hovered); }
    } else if (d.select) drawRegion(S);
  });
  S.canvas.addEventListener("pointerleave", () => { S.tip.style.display = "none"; clearTimeout(S.rest); });
  S.canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const [x, y] = local(e);
    const f = Math.exp(-e.deltaY * 0.0015), s = Math.min(400, Math.max(0.5, S.scale * f)), g = s / S.scale;
    S.ox = x - (x - S.ox) * g;
    S.oy = y - (y - S.oy) * g;
    S.scale = s;
    if (!S.pending) { S.pending = true; requestAnimationFrame(() => { S.pending = false; draw(S); }); }
  }, { passive: false });
}

function hover(S, x, y) {
  if (!S.grid) return;
  const [u, v] = toUnit(S, x, y);
  const i = nearest(S, u, v, 6 / (S.scale * S.side));
  S.hovered = i;
  clearTimeout(S.rest);
  if (i < 0) { S.tip.style.display = "none"; return; }
  S.tipAt = [x, y];
  showTip(S, i);
  // the pointer rests on a point: ask the server for its card (id, thumbnail, every score)
  S.rest = setTimeout(() => { if (S.hovered === i && S.sentHover !== i) { S.sentHover = i; S.setStateValue("hovered", i); } }, S.restMs);
}

function exampleId(S, i) {
  if (S.idStart && i + 1 < S.idStart.length) {
    const end = S.idStart[i + 1] - 1; // before the newline that ends every id (start[n]: as if the last had one)
    return S.idPrefix + S.idDecoder.decode(S.idBytes.subarray(S.idStart[i], end));
  }
  if (S.card && S.card.index === i) return S.card.id;
  return "(loading the id…)";
}

function showTip(S, i) {
  // id · class, cluster, the colour's group, the current score; the thumbnail once the server sent this card
  const cls = S.classNames.length ? S.classNames[S.cls[i]] : null;
  let text = exampleId(S, i) + (cls !== null && cls !== undefined ? ` · ${cls}` : "") + `\ncluster ${S.cluster[i]}`;
  if (S.legend && S.legend[S.codes[i]] && !["cluster", "class"].includes(S.legendTitle))
    text += `\n${S.legend[S.codes[i]]}`;
  if (S.scores) text += `\n${S.scoreName} ${S.scores[i].toFixed(3)}`;
  const card = S.card && S.card.index === i ? S.card : null;
  if (card && card.score && card.score[0] !== S.scoreName) text += `\n${card.score[0]} ${card.score[1].toFixed(3)}`;
  S.tipText.textContent = text;
  const thumb = card && card.thumb;
  if (thumb && S.tipImg.getAttribute("src") !== thumb) S.tipImg.setAttribute("src", thumb);
  S.tip.classList.toggle("has-thumb", !!thumb);
  S.tip.dataset.index = String(i);
  S.tip.style.display = "block";
  // keep the tooltip inside the canvas: to the left of the pointer near the right edge, above it near the bottom
  const [x, y] = S.tipAt, tw = S.tip.offsetWidth, th = S.tip.offsetHeight;
  S.tip.style.left = `${Math.max(0, x + 12 + tw > S.canvas.width ? x - 12 - tw : x + 12)}px`;
  S.tip.style.top = `${Math.max(0, y + 12 + th > S.canvas.height ? y - 12 - th : y + 12)}px`;
}

async function loadIds(S, url, prefix, n) {
  // the ids once per run, after the first draw (the map does not wait for them); one line each
  const bytes = new Uint8Array(await fetchBytes(url));
  const start = new Uint32Array(n + 1);
  let k = 1;
  for (let o = 0; o < bytes.length && k < n; o++) if (bytes[o] === 10) start[k++] = o + 1;
  start[n] = bytes.length + 1; // as if the last id ended with a newline too
  if (k !== n) throw new Error(`map ids: ${k} lines for ${n} points`);
  if (S.idsUrl !== url) return;
  S.idBytes = bytes;
  S.idStart = start;
  S.idPrefix = prefix;
  S.idDecoder = S.idDecoder || new TextDecoder();
  S.root.dataset.ids = String(n);
}

async function update(S, data) {
  S.height = data.height;
  S.restMs = data.rest_ms;
  const W = Math.floor(S.root.clientWidth);
  if (W >= 300 && (W !== S.canvas.width || S.canvas.height !== S.height)) {
    S.canvas.width = W;
    S.canvas.height = S.height;
    resetView(S);
  }
  if (S.posUrl !== data.pos_url) {
    S.status.textContent = `loading ${data.n.toLocaleString()} positions…`;
    const buf = await fetchBytes(data.pos_url);
    const all = new Uint16Array(buf), n = data.n;
    if (all.length !== n * POS_FIELDS) throw new Error(`map positions: ${all.length} values for ${n} points`);
    S.u = new Float32Array(n);
    S.v = new Float32Array(n);
    for (let i = 0; i < n; i++) { S.u[i] = all[i] / 65535; S.v[i] = all[n + i] / 65535; }
    S.cls = all.subarray(2 * n, 3 * n);
    S.cluster = all.subarray(3 * n, 4 * n);
    S.n = n;
    S.bounds = data.bounds;
    S.classNames = data.class_names || [];
    buildGrid(S);
    S.posUrl = data.pos_url;
  }
  if (S.colUrl !== data.col_url) {
    const buf = await fetchBytes(data.col_url), n = data.n;
    S.codes = new Uint8Array(buf, 0, n);
    const off = Math.ceil(n / 4) * 4;
    S.scores = data.has_scores ? new Float32Array(buf, off, n) : null;
    S.colUrl = data.col_url;
  }
  S.palette32 = new Uint32Array(256);
  data.palette.forEach((h, i) => { S.palette32[i] = hexToABGR(h); });
  S.topCode = data.top_code;
  S.legend = data.legend;
  S.legendTitle = data.legend_title;
  S.scoreName = data.score_name;
  S.region = data.region;
  S.card = data.card || null;
  // a new focus (a duplicate group) zooms to it once; pan, zoom and "reset view" stay the user's afterwards
  const focusKey = data.focus ? data.focus.key : null;
  if (focusKey !== S.focusKey) {
    S.focusKey = focusKey;
    if (data.focus) fitBox(S, data.focus.box); else resetView(S);
  }
  S.root.dataset.scale = String(S.scale);
  draw(S);
  if (data.ids_url && S.idsUrl !== data.ids_url) {
    S.idsUrl = data.ids_url;
    S.idStart = null;
    loadIds(S, data.ids_url, data.ids_prefix || "", data.n).catch((e) => {
      S.status.textContent = `map error: ${e.message}`;
    });
  }
  // the rested point's card came back: its thumbnail in the tooltip, if the pointer is still there
  if (S.card && S.tip.style.display === "block" && S.hovered === S.card.index && S.tipAt) showTip(S, S.hovered);
  S.status.textContent = `${data.n.toLocaleString()} points, ${data.title} · drawn in ${S.drawMs.toFixed(0)} ms · ` +
    "drag: pan · wheel: zoom · shift-drag or ▭: select a box · ◌: draw a lasso · click a point: its card";
  S.root.dataset.title = data.title;
  S.root.dataset.n = String(data.n);
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  // the element stays mounted between reruns (a stable key): keep the decoded arrays and the view on it
  const S = parentElement.__mapCanvas || (parentElement.__mapCanvas = { posUrl: null, colUrl: null, hovered: -1 });
  S.setStateValue = setStateValue;
  if (!S.root) { S.height = data.height; setup(S, parentElement, setStateValue); }
  S.queue = (S.queue || Promise.resolve()).then(() => update(S, data)).catch((e) => {
    S.status.textContent = `map error: ${e.message}`;
  });
}

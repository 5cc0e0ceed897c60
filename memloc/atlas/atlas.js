// The memorization atlas page (memloc.atlas.page): a virtualized table, a canvas Data Map and a
// detail view over the rows embedded in #atlas-data.  window.atlas exposes the state to tests.
(function () {
  "use strict";
  const t0 = performance.now();
  const D = JSON.parse(document.getElementById("atlas-data").textContent);
  const col = D.data, N = col.index.length, kinds = {};
  D.columns.forEach(c => { kinds[c.name] = c.kind; });
  const has = name => name in col;
  const ROW_H = 34, $ = id => document.getElementById(id);
  const shown = D.columns.filter(c => c.kind !== "list").map(c => c.name);
  let order = Int32Array.from({length: N}, (_, i) => i), view = order, sortCol = null, sortDir = 1;
  let selection = null, selectionBox = null, current = -1;
  const className = k => (D.classes && D.classes[k] !== undefined && D.classes[k] !== String(k)) ? k + " " + D.classes[k] : String(k);

  // -- filters ---------------------------------------------------------------------------
  const fClass = $("f-class");
  (D.classes || []).forEach((name, k) => fClass.add(new Option(className(k), String(k))));
  if (!has("is_atypical")) $("l-atypical").style.display = "none";
  else $("color-by").add(new Option("atypical", "is_atypical"));
  if (!has("flipped")) $("l-flipped").style.display = "none";
  function passes(i) {
    const f = filters;
    if (f.noisy !== "all" && col.is_noisy[i] !== +f.noisy) return false;
    if (f.cls !== "all" && col.label[i] !== +f.cls) return false;
    if (f.atypical !== "all" && col.is_atypical[i] !== +f.atypical) return false;
    if (f.flipped !== "all" && col.flipped[i] !== +f.flipped) return false;
    if (f.search !== "" && String(col.index[i]) !== f.search) return false;
    if (selection && !selection[i]) return false;
    return true;
  }
  let filters = {noisy: "all", cls: "all", atypical: "all", flipped: "all", search: ""};
  function readFilters() {
    filters = {noisy: $("f-noisy").value, cls: fClass.value, atypical: $("f-atypical").value,
               flipped: $("f-flipped").value, search: $("f-search").value.trim()};
    apply();
  }
  ["f-noisy", "f-class", "f-atypical", "f-flipped"].forEach(id => $(id).addEventListener("change", readFilters));
  $("f-search").addEventListener("input", readFilters);
  $("clear-selection").addEventListener("click", () => { selection = null; selectionBox = null; apply(); });
  $("color-by").addEventListener("change", () => drawMap());

  function apply() {
    const out = new Int32Array(N);
    let n = 0;
    for (let k = 0; k < N; k++) { const i = order[k]; if (passes(i)) out[n++] = i; }
    view = out.subarray(0, n);
    $("count").textContent = n + " of " + N + " examples";
    $("selection-info").textContent = selection ? "Data Map selection: " + selection.count + " examples" : "";
    $("spacer").style.height = (n * ROW_H) + "px";
    renderRows(true);
    drawMap();
  }

  // -- sorting (stable, ties by index, missing values last either way, as pandas) ---------
  function sortBy(name, dir) {
    const v = col[name], num = kinds[name] !== "str";
    const idx = Int32Array.from({length: N}, (_, i) => i);
    idx.sort((a, b) => {
      const x = v[a], y = v[b], mx = x === null, my = y === null;
      if (mx || my) return mx === my ? a - b : (mx ? 1 : -1);
      if (num ? x === y : x === y) return a - b;
      return (x < y ? -1 : 1) * dir;
    });
    order = idx; sortCol = name; sortDir = dir;
    document.querySelectorAll("#thead div").forEach(h => {
      h.className = "c-" + h.dataset.col + (h.dataset.col === name ? (dir > 0 ? " sorted-asc" : " sorted-desc") : "");
    });
    apply();
  }

  // -- the virtualized table -------------------------------------------------------------
  const thead = $("thead"), tbody = $("tbody"), spacer = $("spacer");
  ["thumb", ...shown].forEach(name => {
    const h = document.createElement("div");
    h.dataset.col = name; h.className = "c-" + name; h.textContent = name === "thumb" ? "" : name;
    h.title = name;
    if (name !== "thumb") h.addEventListener("click", () => sortBy(name, sortCol === name ? -sortDir : 1));
    thead.appendChild(h);
  });
  function cell(name, i) {
    const x = col[name][i];
    if (x === null) return "";
    if (name === "label" || name === "true_label" || name.startsWith("flipped_to")) return x < 0 ? "-" : className(x);
    if (kinds[name] === "bool") return x ? "yes" : "no";
    if (kinds[name] === "num" && !Number.isInteger(x)) return x.toFixed(3);
    return String(x);
  }
  let rendered = "";
  function renderRows(force) {
    const first = Math.max(0, Math.floor(tbody.scrollTop / ROW_H) - 5);
    const last = Math.min(view.length, first + Math.ceil(tbody.clientHeight / ROW_H) + 10);
    const key = first + ":" + last;
    if (!force && key === rendered) return;
    rendered = key;
    const parts = [];
    for (let k = first; k < last; k++) {
      const i = view[k], cls = "row" + (col.is_noisy[i] ? " noisy" : "") + (i === current ? " current" : "");
      let h = '<div class="' + cls + '" data-index="' + col.index[i] + '" data-pos="' + i + '" style="top:' +
        (k * ROW_H) + 'px"><div class="c-thumb"><img loading="lazy" src="images/' + col.index[i] + '.png" alt=""></div>';
      for (const name of shown) h += '<div class="c-' + name + '">' + cell(name, i) + "</div>";
      parts.push(h + "</div>");
    }
    tbody.innerHTML = "";
    tbody.appendChild(spacer);
    tbody.insertAdjacentHTML("beforeend", parts.join(""));
  }
  tbody.addEventListener("scroll", () => renderRows(false));
  tbody.addEventListener("click", e => { const r = e.target.closest(".row"); if (r) showDetail(+r.dataset.pos); });

  // -- the Data Map ----------------------------------------------------------------------
  const canvas = $("datamap"), ctx = canvas.getContext("2d"), tip = $("tooltip");
  const M = {l: 44, r: 10, t: 10, b: 34};
  const W = canvas.width - M.l - M.r, H = canvas.height - M.t - M.b;
  const xs = col.variability || new Array(N).fill(0), ys = col.confidence || new Array(N).fill(0);
  let xmax = 0; for (let i = 0; i < N; i++) if (xs[i] > xmax) xmax = xs[i];
  xmax = Math.max(0.05, xmax * 1.05);
  const px = x => M.l + x / xmax * W, py = y => M.t + (1 - y) * H;
  const dx = p => (p - M.l) / W * xmax, dy = p => 1 - (p - M.t) / H;
  function drawMap() {
    const by = $("color-by").value;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = "#888"; ctx.fillStyle = "#444"; ctx.font = "11px sans-serif";
    ctx.strokeRect(M.l, M.t, W, H);
    for (let k = 0; k <= 4; k++) {
      ctx.fillText((k / 4).toFixed(2), 8, py(k / 4) + 4);
      ctx.fillText((xmax * k / 4).toFixed(2), px(xmax * k / 4) - 10, M.t + H + 14);
    }
    ctx.fillText("variability", M.l + W / 2 - 24, canvas.height - 4);
    ctx.save(); ctx.translate(10, M.t + H / 2 + 24); ctx.rotate(-Math.PI / 2); ctx.fillText("confidence", 0, 0); ctx.restore();
    const inView = new Uint8Array(N); for (const i of view) inView[i] = 1;
    const colours = by === "is_atypical" ? ["#7a9cc6", "#e08a1e"] : ["#7a9cc6", "#d62728"];
    for (const pass of [0, 1]) for (let i = 0; i < N; i++) {
      if (inView[i] !== pass) continue;
      const g = col[by][i];
      ctx.fillStyle = pass ? (g === null ? "#bbbbbb" : colours[g]) : "rgba(180,180,180,0.35)";
      ctx.fillRect(px(xs[i]) - 1.5, py(ys[i]) - 1.5, 3, 3);
    }
    if (current >= 0) { ctx.strokeStyle = "#000"; ctx.strokeRect(px(xs[current]) - 4, py(ys[current]) - 4, 8, 8); }
    if (drag) { ctx.strokeStyle = "#333"; ctx.setLineDash([4, 3]);
      ctx.strokeRect(drag.x0, drag.y0, drag.x1 - drag.x0, drag.y1 - drag.y0); ctx.setLineDash([]); }
  }
  function nearest(mx, my, radius) {
    let best = -1, bd = radius * radius;
    for (let i = 0; i < N; i++) {
      const ex = px(xs[i]) - mx, ey = py(ys[i]) - my, d = ex * ex + ey * ey;
      if (d <= bd) { bd = d; best = i; }
    }
    return best;
  }
  const mouse = e => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  let drag = null;
  canvas.addEventListener("mousedown", e => { const [x, y] = mouse(e); drag = {x0: x, y0: y, x1: x, y1: y}; });
  canvas.addEventListener("mousemove", e => {
    const [x, y] = mouse(e);
    if (drag) { drag.x1 = x; drag.y1 = y; drawMap(); return; }
    const i = nearest(x, y, 6);
    if (i < 0) { tip.style.display = "none"; return; }
    tip.innerHTML = '<img src="images/' + col.index[i] + '.png" width="84" height="84"><br>#' + col.index[i] +
      " label " + className(col.label[i]) + (col.is_noisy[i] ? " (noisy, true " + className(col.true_label[i]) + ")" : "");
    tip.style.left = (x + 12) + "px"; tip.style.top = (y + 12) + "px"; tip.style.display = "block";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  window.addEventListener("mouseup", e => {
    if (!drag) return;
    const d = drag; drag = null;
    if (Math.abs(d.x1 - d.x0) < 3 && Math.abs(d.y1 - d.y0) < 3) {
      const i = nearest(d.x0, d.y0, 6);
      if (i >= 0) selectBox({x0: xs[i], x1: xs[i], y0: ys[i], y1: ys[i]}, i);
      else drawMap();
      return;
    }
    const xa = dx(Math.min(d.x0, d.x1)), xb = dx(Math.max(d.x0, d.x1));
    const ya = dy(Math.max(d.y0, d.y1)), yb = dy(Math.min(d.y0, d.y1));
    selectBox({x0: xa, x1: xb, y0: ya, y1: yb}, -1);
  });
  // select the points whose (variability, confidence) lie in the box (data units, bounds included)
  function selectBox(box, open) {
    const s = new Uint8Array(N); let count = 0;
    for (let i = 0; i < N; i++) if (xs[i] >= box.x0 && xs[i] <= box.x1 && ys[i] >= box.y0 && ys[i] <= box.y1) { s[i] = 1; count++; }
    s.count = count; selection = s; selectionBox = box;
    apply();
    if (open >= 0) showDetail(open);
  }

  // -- the detail view -------------------------------------------------------------------
  const detail = $("detail"), chunks = {}, waiting = {};
  window.atlasDetail = (k, part) => { chunks[k] = part; (waiting[k] || []).forEach(f => f()); delete waiting[k]; };
  function withChunk(k, f) {
    if (chunks[k]) return f();
    if (!waiting[k]) { waiting[k] = []; const s = document.createElement("script"); s.src = "detail/" + k + ".js"; document.head.appendChild(s); }
    waiting[k].push(f);
  }
  const esc = s => String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
  function layersHtml(i) {
    if (!has("flipped")) return "<p>Neuron flipping is not configured.</p>";
    if (!col.flipped[i]) return "<p>Not among the flipped examples.</p>";
    let h = "";
    for (const c of D.columns) {
      if (!c.name.startsWith("layers_s")) continue;
      const s = c.name.slice(8), layers = col[c.name][i], counts = {};
      if (col["removals_s" + s][i] === null) continue;
      layers.split(",").filter(Boolean).forEach(l => { counts[l] = (counts[l] || 0) + 1; });
      const by = Object.entries(counts).map(([l, n]) => esc(l) + " \u00d7" + n).join(", ") || "none";
      const to = col["flipped_to_s" + s][i];
      h += "<li>seed " + esc(s) + ": " + col["removals_s" + s][i] + " removals" + (col["censored_s" + s][i] ? " (censored)" : "") +
        " \u2014 " + by + (to >= 0 ? "; flipped to " + esc(className(to)) : "") + "</li>";
    }
    return '<ul id="detail-layers">' + h + "</ul>";
  }
  function showDetail(i) {
    current = i;
    const idx = col.index[i];
    const rows = shown.filter(n => !n.startsWith("layers_s")).map(n => "<tr><td>" + esc(n) + "</td><td>" + esc(cell(n, i)) + "</td></tr>").join("");
    let nb = "";
    if (has("neighbours")) nb = "<h2>Nearest neighbours (penultimate features)</h2>" + col.neighbours[i].map(j =>
      '<span class="nb ' + (col.label[j] === col.label[i] ? "same" : "other") + '" data-pos="' + j + '"><img src="images/' +
      col.index[j] + '.png" alt="">#' + col.index[j] + "<br>" + esc(className(col.label[j])) + "</span>").join("");
    detail.innerHTML = '<h2>Example #' + idx + '</h2><div class="cols"><div><img id="detail-image" class="big" src="images/' + idx +
      '.png" alt="example ' + idx + '"><canvas id="detail-curve" width="240" height="110"></canvas></div><div><table>' + rows +
      "</table></div></div><h2>Removed units by layer</h2>" + layersHtml(i) + '<div id="detail-neighbours">' + nb + "</div>";
    detail.querySelectorAll(".nb").forEach(el => el.addEventListener("click", () => showDetail(+el.dataset.pos)));
    withChunk(Math.floor(i / D.chunk), () => drawCurve(i));
    renderRows(true); drawMap();
  }
  function drawCurve(i) {
    const c = $("detail-curve"); if (!c || current !== i) return;
    const g = c.getContext("2d"), part = chunks[Math.floor(i / D.chunk)], r = i % D.chunk;
    const correct = part.correct[r], margin = part.margin[r], E = margin.length;
    let lo = Math.min(0, ...margin), hi = Math.max(0, ...margin); if (hi === lo) hi = lo + 1;
    const X = e => 30 + e / Math.max(1, E - 1) * 200, Y = m => 10 + (hi - m) / (hi - lo) * 70;
    g.font = "10px sans-serif"; g.fillStyle = "#444";
    g.fillText("margin", 0, 10); g.fillText("epoch 0\u2013" + (E - 1) + ", correct (green)", 30, 106);
    g.strokeStyle = "#bbb"; g.beginPath(); g.moveTo(30, Y(0)); g.lineTo(230, Y(0)); g.stroke();
    g.strokeStyle = "#333"; g.beginPath();
    margin.forEach((m, e) => e ? g.lineTo(X(e), Y(m)) : g.moveTo(X(e), Y(m))); g.stroke();
    for (let e = 0; e < E; e++) { g.fillStyle = correct[e] === "1" ? "#2a2" : "#d33"; g.fillRect(X(e) - 2, 86, 4, 8); }
  }

  window.atlas = {
    sortBy, apply, showDetail, selectBox,
    visibleIndices: () => Array.from(view, i => col.index[i]),
    state: () => ({sortCol, sortDir, filters, selectionBox, current: current >= 0 ? col.index[current] : null}),
    plotToPage: (x, y) => { const r = canvas.getBoundingClientRect(); return [r.left + px(x), r.top + py(y)]; },
    canvasPoint: (x, y) => [px(x) - canvas.width / 2, py(y) - canvas.height / 2],
  };
  apply();
  window.atlas.readyMs = performance.now() - t0;
  document.body.dataset.ready = "1";
})();

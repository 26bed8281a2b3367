// Hedge dashboard: one page, no dependencies, no build step. Charts are drawn here as SVG.
// Everything shown that comes from the gateway is set as text (never as HTML), so request
// bodies and error messages cannot inject markup; the page's CSP forbids inline script too.
"use strict";

(function () {
  const KEY_STORAGE = "hedge.masterKey";
  const PREFS_STORAGE = "hedge.dashboard.prefs";
  const REFRESH_MS = 5000;
  const PAGE_SIZE = 50;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2d6cdf", "#12a4a4", "#e27d2f", "#8a4fd8", "#d9488b", "#5d9f2c", "#c99a1c", "#5a74b8"];
  const OTHER_COLOR = "#8d99aa";

  const state = {
    key: null,
    range: "24h",
    by: "provider",
    auto: true,
    timer: null,
    busy: false,
    data: {},
    log: { q: "", provider: "", model: "", status: "", offset: 0, total: 0 },
    logSeq: 0,
    detailId: null,
  };

  const $ = (id) => document.getElementById(id);

  // -- DOM helpers ---------------------------------------------------------------------------------

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c == null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function swatch(color, cls) {
    const sw = h("i", { class: "sw" + (cls ? " " + cls : "") });
    if (color) sw.style.background = color;
    return sw;
  }

  // -- formatting ----------------------------------------------------------------------------------

  const intFmt = new Intl.NumberFormat("en-US");
  const usdSmall = new Intl.NumberFormat("en-US", {
    style: "currency", currency: "USD", maximumSignificantDigits: 3,
  });
  const usdLarge = new Intl.NumberFormat("en-US", {
    style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2,
  });

  function fmtUsd(v) {
    if (v == null || Number.isNaN(v)) return "–";
    if (v === 0) return "$0.00";
    return Math.abs(v) >= 1 ? usdLarge.format(v) : usdSmall.format(v);
  }
  function fmtInt(v) { return v == null ? "–" : intFmt.format(v); }
  function fmtPct(r) {
    if (r == null || Number.isNaN(r)) return "–";
    const p = r * 100;
    if (p === 0) return "0%";
    if (p < 0.1) return "<0.1%";
    return p.toFixed(1) + "%";
  }
  function fmtMs(v) {
    if (v == null) return "–";
    if (v < 1000) return (v < 10 ? v.toFixed(1) : String(Math.round(v))) + " ms";
    return (v / 1000).toFixed(v < 10000 ? 2 : 1) + " s";
  }
  function fmtCompact(v) {
    if (v == null) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "B";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return intFmt.format(v);
  }
  const pad = (n) => String(n).padStart(2, "0");
  function fmtClock(ts, seconds) {
    const d = new Date(ts * 1000);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + (seconds ? ":" + pad(d.getSeconds()) : "");
  }
  function fmtDay(ts) {
    return new Date(ts * 1000).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }
  function fmtAxisTime(ts, step, span) {
    if (step >= 86400) return fmtDay(ts);
    if (span > 2 * 86400) return fmtDay(ts) + " " + fmtClock(ts, false);
    return fmtClock(ts, step < 60);
  }
  function fmtStamp(ts) {
    const d = new Date(ts * 1000);
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + fmtClock(ts, true);
  }

  // -- API -----------------------------------------------------------------------------------------

  class AuthError extends Error {}

  async function api(path, params) {
    const url = new URL("admin/dashboard/" + path, document.baseURI);
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== "" && v != null) url.searchParams.set(k, String(v));
    }
    const resp = await fetch(url, {
      headers: { Authorization: "Bearer " + state.key, Accept: "application/json" },
      cache: "no-store",
    });
    let body = null;
    try { body = await resp.json(); } catch (_) { body = null; }
    const message = (body && body.error && body.error.message) || "HTTP " + resp.status;
    if (resp.status === 401 || resp.status === 403) throw new AuthError(message);
    if (!resp.ok) throw new Error(message);
    return body;
  }

  // -- charts --------------------------------------------------------------------------------------

  function niceScale(max, count) {
    if (!(max > 0)) return { top: 1, step: 0.25 };
    const raw = max / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
    return { top: Math.ceil(max / step - 1e-9) * step, step };
  }

  function empty(host, text) {
    host.replaceChildren(h("div", { class: "empty", text }));
  }

  const tooltip = () => $("tooltip");

  function showTooltip(ev, title, rows) {
    const tip = tooltip();
    tip.replaceChildren(h("div", { class: "tt-title", text: title }));
    for (const r of rows) {
      tip.append(h("div", { class: "tt-row" }, h("span", null, swatch(r.color, r.cls), r.name), h("b", { text: r.value })));
    }
    tip.hidden = false;
    const w = tip.offsetWidth, hgt = tip.offsetHeight;
    let x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + w > window.innerWidth - 8) x = ev.clientX - w - 14;
    if (y + hgt > window.innerHeight - 8) y = ev.clientY - hgt - 14;
    tip.style.left = Math.max(4, x) + "px";
    tip.style.top = Math.max(4, y) + "px";
  }
  function hideTooltip() { tooltip().hidden = true; }

  // A time chart over buckets: stacked areas, stacked bars and lines, with axes and a hover tooltip.
  // layers: [{name, values, type: "area"|"bar"|"line", color?, cls?, dashed?, format?, hidden?}];
  // a hidden layer is not drawn (nor scaled for) but shows in the tooltip.
  function timeChart(host, x, step, layers, yFormat, id) {
    host.replaceChildren();
    const n = x.length;
    const W = Math.max(host.clientWidth, 260);
    const H = Math.max(host.clientHeight, 160);
    const m = { l: 62, r: 12, t: 10, b: 24 };
    const iw = W - m.l - m.r, ih = H - m.t - m.b;
    const slot = iw / Math.max(n, 1);
    const xAt = (i) => m.l + (i + 0.5) * slot;

    // Stack areas on areas and bars on bars; lines stand alone.
    const base = { area: new Array(n).fill(0), bar: new Array(n).fill(0) };
    const drawn = layers.filter((l) => !l.hidden).map((layer) => {
      const lo = layer.type === "line" ? null : base[layer.type].slice();
      const hi = layer.values.map((v, i) => (lo ? lo[i] : 0) + (v || 0));
      if (lo) base[layer.type] = hi.slice();
      return { layer, lo, hi };
    });
    let max = 0;
    for (const d of drawn) for (const v of d.hi) if (v > max) max = v;
    const { top, step: yStep } = niceScale(max, 4);
    const yAt = (v) => m.t + ih - (v / top) * ih;

    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, "data-chart": id, "data-points": n });
    const grid = svg("g");
    for (let v = 0; v <= top + yStep / 2; v += yStep) {
      const y = yAt(v);
      grid.append(svg("line", { class: "grid-line", x1: m.l, x2: W - m.r, y1: y, y2: y }));
      grid.append(svg("text", { class: "axis-label", x: m.l - 8, y: y + 4, "text-anchor": "end", text: yFormat(v) }));
    }
    const span = n * step;
    const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(iw / 86))));
    for (let i = 0; i < n; i += every) {
      grid.append(svg("text", {
        class: "axis-label", x: xAt(i), y: H - 6, "text-anchor": "middle", text: fmtAxisTime(x[i], step, span),
      }));
    }
    root.append(grid);

    const plot = svg("g");
    for (const { layer, lo, hi } of drawn) {
      const attrs = { "data-series": layer.name };
      if (layer.type === "area") {
        let d = "";
        for (let i = 0; i < n; i++) d += (i ? "L" : "M") + xAt(i).toFixed(1) + "," + yAt(hi[i]).toFixed(1);
        for (let i = n - 1; i >= 0; i--) d += "L" + xAt(i).toFixed(1) + "," + yAt(lo[i]).toFixed(1);
        const area = svg("path", { ...attrs, class: "area " + (layer.cls || ""), d: d + "Z" });
        if (layer.color) { area.setAttribute("fill", layer.color); area.setAttribute("fill-opacity", "0.78"); }
        plot.append(area);
        let top = "";
        for (let i = 0; i < n; i++) top += (i ? "L" : "M") + xAt(i).toFixed(1) + "," + yAt(hi[i]).toFixed(1);
        const edge = svg("path", { class: "series-line", d: top });
        edge.setAttribute("stroke", layer.color || "currentColor");
        edge.setAttribute("stroke-width", "1.2");
        plot.append(edge);
      } else if (layer.type === "bar") {
        const g = svg("g", { ...attrs, class: layer.cls || "" });
        if (layer.color) g.setAttribute("fill", layer.color);
        const bw = Math.max(1, slot * 0.72);
        for (let i = 0; i < n; i++) {
          if (!(hi[i] > lo[i])) continue;
          const y1 = yAt(hi[i]), y0 = yAt(lo[i]);
          g.append(svg("rect", { x: (xAt(i) - bw / 2).toFixed(1), y: y1.toFixed(1), width: bw.toFixed(1), height: Math.max(0.5, y0 - y1).toFixed(1) }));
        }
        plot.append(g);
      } else {
        let d = "";
        for (let i = 0; i < n; i++) d += (i ? "L" : "M") + xAt(i).toFixed(1) + "," + yAt(hi[i]).toFixed(1);
        const line = svg("path", { ...attrs, class: "series-line " + (layer.cls || "") + (layer.dashed ? " dashed" : ""), d });
        if (layer.color) line.setAttribute("stroke", layer.color);
        plot.append(line);
      }
    }
    root.append(plot);

    const guide = svg("line", { class: "guide", y1: m.t, y2: m.t + ih, x1: -10, x2: -10, visibility: "hidden" });
    root.append(guide);
    const overlay = svg("rect", { x: m.l, y: m.t, width: iw, height: ih, fill: "transparent" });
    overlay.addEventListener("mousemove", (ev) => {
      const rect = root.getBoundingClientRect();
      const mx = (ev.clientX - rect.left) * (W / rect.width);
      const i = Math.min(n - 1, Math.max(0, Math.floor((mx - m.l) / slot)));
      guide.setAttribute("x1", xAt(i));
      guide.setAttribute("x2", xAt(i));
      guide.setAttribute("visibility", "visible");
      const rows = layers.slice().reverse().map((l) => ({
        name: l.name, color: l.color, cls: l.swatch, value: (l.format || yFormat)(l.values[i] || 0),
      }));
      const title = fmtStamp(x[i]) + (step > 1 ? " – " + fmtClock(x[i] + step, step < 60) : "");
      showTooltip(ev, title, rows);
    });
    overlay.addEventListener("mouseleave", () => { guide.setAttribute("visibility", "hidden"); hideTooltip(); });
    root.append(overlay);
    host.append(root);
  }

  function legend(host, items) {
    host.replaceChildren(...items.map((it) => h("span", { dataset: { series: it.name } },
      it.color || it.cls ? swatch(it.color, it.cls) : null, it.name, it.value != null ? h("b", { text: it.value }) : null)));
  }

  // Horizontal "bullet" bars per deployment: latency p99/p95/p50 overlaid, TTFT p95/p50 below.
  function latencyChart(host, deployments) {
    host.replaceChildren();
    if (!deployments.length) return empty(host, "No requests in this range yet.");
    const W = Math.max(host.clientWidth, 300);
    const labelW = Math.min(240, Math.max(120, W * 0.28));
    const m = { l: labelW + 10, r: 16, t: 6, b: 24 };
    const rowH = 40;
    const H = m.t + deployments.length * rowH + m.b;
    const iw = W - m.l - m.r;
    let max = 0;
    for (const d of deployments) max = Math.max(max, d.latency_ms.p99 || 0, d.ttft_ms.p99 || 0);
    const { top, step } = niceScale(max, 5);
    const xAt = (v) => m.l + (Math.max(0, v || 0) / top) * iw;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, "data-chart": "latency" });
    for (let v = 0; v <= top + step / 2; v += step) {
      root.append(svg("line", { class: "grid-line", x1: xAt(v), x2: xAt(v), y1: m.t, y2: H - m.b }));
      root.append(svg("text", { class: "axis-label", x: xAt(v), y: H - 6, "text-anchor": "middle", text: fmtMs(v) }));
    }
    deployments.forEach((d, row) => {
      const y = m.t + row * rowH;
      const g = svg("g", { "data-deployment": d.deployment, "data-p50": d.latency_ms.p50, "data-p95": d.latency_ms.p95, "data-p99": d.latency_ms.p99 });
      let label = d.deployment;
      const maxChars = Math.floor(labelW / 7);
      if (label.length > maxChars) label = "…" + label.slice(label.length - maxChars + 1);
      g.append(svg("text", { class: "dep-label", x: labelW, y: y + 17, "text-anchor": "end", text: label }));
      g.append(svg("rect", { class: "track", x: m.l, y: y + 6, width: iw, height: 14, rx: 3 }));
      const bar = (cls, v, yy, hh) => {
        if (v == null) return;
        g.append(svg("rect", { class: cls, x: m.l, y: yy, width: Math.max(1, xAt(v) - m.l).toFixed(1), height: hh, rx: 2 }));
      };
      bar("lat99", d.latency_ms.p99, y + 6, 14);
      bar("lat95", d.latency_ms.p95, y + 6, 14);
      bar("lat50", d.latency_ms.p50, y + 6, 14);
      bar("ttft95", d.ttft_ms.p95, y + 23, 7);
      bar("ttft50", d.ttft_ms.p50, y + 23, 7);
      const hit = svg("rect", { x: 0, y, width: W, height: rowH, fill: "transparent" });
      hit.addEventListener("mousemove", (ev) => showTooltip(ev, d.deployment, [
        { name: "p50", cls: "lat50", value: fmtMs(d.latency_ms.p50) },
        { name: "p95", cls: "lat95", value: fmtMs(d.latency_ms.p95) },
        { name: "p99", cls: "lat99", value: fmtMs(d.latency_ms.p99) },
        { name: "TTFT p50", cls: "ttft50", value: fmtMs(d.ttft_ms.p50) },
        { name: "TTFT p95", cls: "ttft95", value: fmtMs(d.ttft_ms.p95) },
        { name: "served", value: fmtInt(d.served) },
        { name: "failed attempts", value: fmtInt(d.failed_attempts) },
      ]));
      hit.addEventListener("mouseleave", hideTooltip);
      g.append(hit);
      root.append(g);
    });
    host.append(root);
  }

  // -- rendering -----------------------------------------------------------------------------------

  function setKpi(id, value, text, sub, tone) {
    const el = $(id);
    el.textContent = text;
    el.dataset.value = String(value);
    el.title = typeof value === "number" && !Number.isInteger(value) ? String(value) : text;
    $(id + "-sub").textContent = sub || "";
    const card = el.parentElement;
    card.classList.remove("bad", "warn");
    if (tone) card.classList.add(tone);
  }

  function renderSummary(s) {
    const none = s.no_baseline; // no request in the range was priced against a baseline: no savings to show
    setKpi("kpi-requests", s.requests, fmtInt(s.requests), fmtInt(s.streams) + " streamed");
    // Requests booked at $0 because their deployment has no price, or their upstream sent no usage:
    // the spend shown is then less than what was spent, so say so on the spend itself.
    const unpriced = (s.price_missing || 0), usageless = (s.usage_missing || 0);
    const flags = [];
    if (unpriced) flags.push(fmtInt(unpriced) + " without a price");
    if (usageless) flags.push(fmtInt(usageless) + " without usage");
    setKpi("kpi-cost", s.cost_usd, fmtUsd(s.cost_usd),
      flags.length ? flags.join(" · ") + " (booked at $0)" : none ? "nothing to compare with" : "baseline " + fmtUsd(s.baseline_cost_usd),
      flags.length ? "warn" : null);
    const c = s.charges_usd;
    if (c) $("kpi-cost").title = "input " + fmtUsd(c.input) + " · cache reads " + fmtUsd(c.cache_read) + " · cache writes "
      + fmtUsd(c.cache_write) + " · output " + fmtUsd(c.output) + " · reasoning " + fmtUsd(c.reasoning) + " · fees " + fmtUsd(c.request);
    if (none) setKpi("kpi-savings", "", "–", none.message);
    else setKpi("kpi-savings", s.savings_usd, fmtUsd(s.savings_usd), fmtPct(s.savings_rate) + " of the baseline");
    setKpi("kpi-errors", s.error_rate, fmtPct(s.error_rate), fmtInt(s.errors) + " failed requests",
      s.error_rate >= 0.05 ? "bad" : s.error_rate > 0 ? "warn" : null);
    setKpi("kpi-failovers", s.failover_rate, fmtPct(s.failover_rate), fmtInt(s.failovers) + " needed more than one attempt",
      s.failover_rate >= 0.2 ? "warn" : null);
    setKpi("kpi-cache", s.cache_hits, fmtInt(s.cache_hits), fmtPct(s.cache_hit_rate) + " of requests");
    setKpi("kpi-tokens", s.total_tokens, fmtCompact(s.total_tokens),
      fmtCompact(s.prompt_tokens) + " in · " + fmtCompact(s.completion_tokens) + " out");
    const big = $("savings-big");
    big.classList.toggle("none", Boolean(none));
    big.dataset.baseline = none ? none.reason : "priced";
    big.dataset.value = none ? "" : String(s.savings_usd);
    big.textContent = none ? none.message.charAt(0).toUpperCase() + none.message.slice(1) : fmtUsd(s.savings_usd);
    $("savings-pct").textContent = none ? "" : fmtPct(s.savings_rate) + " saved";
    $("savings-note").textContent = none
      ? "Spent " + fmtUsd(s.cost_usd) + "; there is nothing to compare it with."
      : "Spent " + fmtUsd(s.cost_usd) + " where the baseline models would have cost " + fmtUsd(s.baseline_cost_usd) + ".";
    $("savings-hint").textContent = none ? none.hint : "";
    $("savings-hint").hidden = !none;
  }

  function groupLabel(name) { return name === "-" ? "(none)" : name; }

  function renderSpend(ts) {
    const host = $("chart-spend");
    // Groups that spent nothing (requests refused before routing, failed providers) would only add noise.
    const spent = ts.series.filter((s) => s.total_cost_usd > 0);
    if (!spent.length) {
      empty(host, ts.series.length ? "Nothing was spent in this range." : "No requests in this range yet.");
      $("legend-spend").replaceChildren();
      return;
    }
    const layers = spent.map((s, i) => ({
      name: groupLabel(s.group), values: s.cost_usd, type: "bar",
      color: s.group === "other" ? OTHER_COLOR : PALETTE[i % PALETTE.length],
    }));
    timeChart(host, ts.buckets, ts.bucket_s, layers, fmtUsd, "spend");
    legend($("legend-spend"), layers.map((l, i) => ({ name: l.name, color: l.color, value: fmtUsd(spent[i].total_cost_usd) })));
  }

  function renderSavings(ts, summary) {
    const host = $("chart-savings");
    if (!ts.series.length || (summary && summary.no_baseline)) {
      empty(host, ts.series.length ? "No baseline to compare the spend with." : "No requests in this range yet.");
      $("legend-savings").replaceChildren();
      return;
    }
    const cumulative = (xs) => { let t = 0; return xs.map((v) => (t += v)); };
    const cost = cumulative(ts.cost_usd), baseline = cumulative(ts.baseline_cost_usd);
    const layers = [
      { name: "baseline", values: baseline, type: "line", cls: "line-baseline", dashed: true, swatch: "base" },
      { name: "actual", values: cost, type: "line", cls: "line-cost", swatch: "cost" },
      { name: "saved", values: baseline.map((b, i) => b - cost[i]), type: "line", hidden: true, swatch: "cost" },
    ];
    timeChart(host, ts.buckets, ts.bucket_s, layers, fmtUsd, "savings");
    // Shade the gap between baseline and actual: that is the saving.
    const root = host.querySelector("svg");
    const paths = root.querySelectorAll("path.series-line");
    if (paths.length === 2) {
      const top = paths[0].getAttribute("d"), bottom = paths[1].getAttribute("d");
      const back = bottom.slice(1).split("L").reverse().join("L");
      const gap = svg("path", { class: "area area-savings", d: top + "L" + back + "Z" });
      paths[0].parentNode.insertBefore(gap, paths[0]);
    }
    legend($("legend-savings"), [
      { name: "baseline (cumulative)", cls: "base" },
      { name: "actual (cumulative)", cls: "cost" },
    ]);
  }

  function renderTraffic(ts) {
    const host = $("chart-traffic");
    if (!ts.series.length) {
      empty(host, "No requests in this range yet.");
      $("legend-traffic").replaceChildren();
      return;
    }
    const ok = ts.requests.map((r, i) => r - ts.errors[i]);
    const layers = [
      { name: "ok", values: ok, type: "bar", cls: "bar-ok", swatch: "ok", format: fmtInt },
      { name: "errors", values: ts.errors, type: "bar", cls: "bar-error", swatch: "err", format: fmtInt },
      { name: "failovers", values: ts.failovers, type: "line", cls: "line-failover", swatch: "fo", format: fmtInt },
    ];
    timeChart(host, ts.buckets, ts.bucket_s, layers, (v) => fmtCompact(Math.round(v * 100) / 100), "traffic");
    const sum = (xs) => xs.reduce((a, b) => a + b, 0);
    legend($("legend-traffic"), [
      { name: "succeeded", cls: "ok", value: fmtInt(sum(ok)) },
      { name: "failed", cls: "err", value: fmtInt(sum(ts.errors)) },
      { name: "served after a failover or retry", cls: "fo", value: fmtInt(sum(ts.failovers)) },
      { name: "per " + fmtBucket(ts.bucket_s) },
    ]);
  }

  function fmtBucket(s) {
    if (s % 86400 === 0) return s === 86400 ? "day" : s / 86400 + " days";
    if (s % 3600 === 0) return s === 3600 ? "hour" : s / 3600 + " hours";
    if (s % 60 === 0) return s === 60 ? "minute" : s / 60 + " minutes";
    return s === 1 ? "second" : s + " seconds";
  }

  function renderLatency(lat) {
    latencyChart($("chart-latency"), lat.deployments);
    const body = $("table-latency").tBodies[0];
    if (!lat.deployments.length) {
      body.replaceChildren(h("tr", null, h("td", { class: "empty-row", colspan: 11, text: "No requests in this range yet." })));
      return;
    }
    body.replaceChildren(...lat.deployments.map((d) => h("tr", {
      class: d.failed_attempts ? "has-failures" : null,
      dataset: { deployment: d.deployment, served: d.served, failed: d.failed_attempts, cancelled: d.cancelled_attempts },
    },
      h("td", { text: d.deployment }),
      h("td", { class: "num", text: fmtInt(d.served) }),
      h("td", { class: "num", text: fmtInt(d.failed_attempts) + (d.failed_attempts ? " (" + fmtPct(d.failure_rate) + ")" : "") }),
      h("td", { class: "num", text: fmtInt(d.cancelled_attempts) }),
      h("td", { class: "num", text: fmtMs(d.latency_ms.p50) }),
      h("td", { class: "num", text: fmtMs(d.latency_ms.p95) }),
      h("td", { class: "num", text: fmtMs(d.latency_ms.p99) }),
      h("td", { class: "num", text: fmtMs(d.ttft_ms.p50) }),
      h("td", { class: "num", text: fmtMs(d.ttft_ms.p95) }),
      h("td", { class: "num", text: fmtMs(d.ttft_ms.p99) }),
      h("td", { class: "num", text: fmtUsd(d.cost_usd) }),
    )));
  }

  function renderBreakers(b) {
    const list = $("breakers");
    if (!b.deployments.length) {
      list.replaceChildren(h("li", { class: "muted", text: "No deployments configured." }));
      return;
    }
    list.replaceChildren(...b.deployments.map((d) => {
      const meta = ["in flight " + d.in_flight];
      if (d.ewma_latency_ms != null) meta.push("EWMA " + fmtMs(d.ewma_latency_ms));
      if (d.ewma_ttft_ms != null) meta.push("TTFT " + fmtMs(d.ewma_ttft_ms));
      if (d.prompt_tokens) meta.push("cache-read " + Math.round(100 * (d.cache_read_ratio || 0)) + "% of " + d.prompt_tokens + " prompt tokens");
      if (d.probe) meta.push("probe " + (d.probe.ok ? "ok " + fmtMs(d.probe.latency_ms) : "failed: " + d.probe.error));
      meta.push((d.aliases.length > 1 ? "aliases " : "alias ") + d.aliases.join(", "));
      if (d.quality_source === "measured" && d.measured_quality) {
        const m = d.measured_quality;
        meta.push("quality " + m.quality.toFixed(3) + " [" + m.ci_low.toFixed(3) + ", " + m.ci_high.toFixed(3) +
          "] measured (n " + m.n + ", " + m.grader + ")");
      } else if (d.quality_source === "configured") {
        meta.push("quality " + d.quality + " configured");
      }
      return h("li", { dataset: { deployment: d.deployment, state: d.state, quality: d.quality_source || "" } },
        h("span", { class: "dep", text: d.deployment }),
        h("span", null,
          d.cooling_down ? h("span", { class: "badge cooling", text: "cooling down" }) : null, " ",
          d.misconfigured ? h("span", { class: "badge fail misconfigured", text: "misconfigured", title: d.misconfigured_reason || "" }) : null, " ",
          h("span", { class: "badge " + d.state, text: d.state.replace("_", "-") })),
        h("span", { class: "meta", text: meta.join(" · ") }));
    }));
  }

  function renderConformance(c) {
    const host = $("conformance");
    const note = $("conformance-note");
    if (!c.results || !c.results.length) {
      note.textContent = "";
      host.replaceChildren(h("p", { class: "muted", id: "conformance-empty" },
        "No conformance runs yet. Run ", h("code", { text: "hedge check --config hedge.yaml --all" }),
        " to check every deployment; its results show here."));
      return;
    }
    const deps = [...new Set(c.results.map((r) => r.deployment))];
    const cases = [...new Set(c.results.map((r) => r.case))].sort();
    const cell = new Map(c.results.map((r) => [r.deployment + "\u0000" + r.case, r]));
    const passed = c.results.filter((r) => r.status === "pass").length;
    const failed = c.results.filter((r) => r.status === "fail").length;
    note.textContent = passed + " passed · " + failed + " failed · " + (c.results.length - passed - failed) + " skipped";
    const head = h("tr", null, h("th", { text: "Deployment" }), ...cases.map((k) => h("th", { text: k })), h("th", { text: "Checked" }));
    const rows = deps.map((dep) => {
      let last = "";
      const tds = cases.map((k) => {
        const r = cell.get(dep + "\u0000" + k);
        if (!r) return h("td", { class: "cell muted", text: "·" });
        if (r.checked_at > last) last = r.checked_at;
        const mark = r.status === "pass" ? "✓ pass" : r.status === "fail" ? "✗ fail" : "– skip";
        return h("td", { class: "cell", title: k + ": " + r.status + " at " + r.checked_at }, h("span", { class: "badge " + r.status, text: mark }));
      });
      return h("tr", { dataset: { deployment: dep } }, h("td", { text: dep }), ...tds,
        h("td", { class: "muted", text: last ? new Date(last).toLocaleString() : "" }));
    });
    host.replaceChildren(h("table", { class: "data conf" }, h("thead", null, head), h("tbody", null, ...rows)));
  }

  function fmtScore(v) { return v == null ? "–" : v.toFixed(3); }
  function fmtInterval(mid, low, high, signed) {
    if (mid == null) return "–";
    const f = (v) => (signed && v > 0 ? "+" : "") + v.toFixed(3);
    return low == null ? f(mid) : f(mid) + " [" + f(low) + ", " + f(high) + "]";
  }

  function renderExperiments(x) {
    const host = $("experiments");
    const experiments = x.experiments || [];
    const shadow = x.shadow || [];
    $("experiments-note").textContent = experiments.length + " experiment" + (experiments.length === 1 ? "" : "s") +
      " · " + shadow.reduce((n, p) => n + p.pairs, 0) + " shadow pairs";
    if (!experiments.length && !shadow.length) {
      host.replaceChildren(h("p", { class: "muted", id: "experiments-empty" },
        "No experiments or shadow traffic yet. Add ", h("code", { text: "experiments:" }), " or ",
        h("code", { text: "models.ALIAS.shadow:" }), " to the config (see the README); results show here."));
      return;
    }
    const parts = [];
    for (const e of experiments) {
      const verdict = (q) => (q === true ? "✓ qualifies" : q === false ? "✗ does not" : "not yet");
      const head = h("tr", null, ...["Arm", "Alias", "Weight", "n", e.metric + " (95% CI)", "vs control (95% CI)",
        "Cost / request", "Savings", "Latency", ""].map((t) => h("th", { text: t })));
      const rows = e.arms.map((a) => h("tr", { dataset: { arm: a.arm } },
        h("td", { text: a.arm + (a.arm === e.recommended ? " ★" : "") }), h("td", { text: a.use }),
        h("td", { class: "num", text: a.weight.toFixed(1) + "%" }), h("td", { class: "num", text: fmtInt(a.n) }),
        h("td", { class: "num", text: fmtInterval(a.metric_mean, a.ci_low, a.ci_high) }),
        h("td", { class: "num", text: fmtInterval(a.diff_to_control, a.diff_ci_low, a.diff_ci_high, true) }),
        h("td", { class: "num", text: fmtUsd(a.cost_per_request_usd) }),
        h("td", { class: "num", text: fmtPct(a.savings_vs_control) }),
        h("td", { class: "num", text: fmtMs(a.latency_ms) }),
        h("td", null, h("span", { class: "badge " + (a.qualifies ? "pass" : a.qualifies === false ? "fail" : "skip"), text: verdict(a.qualifies) }))));
      const rule = e.margin != null ? "not worse than control by more than " + e.margin : "lower bound at or above " + e.bar;
      parts.push(h("h3", { class: "small", dataset: { experiment: e.name } }, e.name + " on " + e.alias + ": recommended ",
        h("strong", { class: "recommended", text: e.recommended || "none yet" }),
        h("span", { class: "muted", text: " (" + (e.margin != null || e.bar != null ? rule : "no bar") + (e.adaptive ? ", adaptive" : "") + ")" })));
      parts.push(h("table", { class: "data experiments" }, h("thead", null, head), h("tbody", null, ...rows)));
      if (e.changes && e.changes.length) {
        const c = e.changes[0];
        parts.push(h("p", { class: "muted small" }, "Last weight change " + fmtStamp(c.ts) + ": " +
          Object.entries(c.weights).map(([k, v]) => k + " " + v.toFixed(1) + "%").join(", ") +
          (c.evidence && c.evidence.target ? " (toward " + c.evidence.target + ")" : "")));
      }
    }
    if (shadow.length) {
      const head = h("tr", null, ...["Alias", "Shadow to", "Grader", "Pairs", "Errors", "Score (95% CI)", "Shadow cost",
        "Savings", "Latency (primary → shadow)"].map((t) => h("th", { text: t })));
      const rows = shadow.map((p) => h("tr", { dataset: { target: p.target } },
        h("td", { text: p.alias }), h("td", { text: p.target }), h("td", { text: p.grader }),
        h("td", { class: "num", text: fmtInt(p.pairs) }), h("td", { class: "num", text: fmtInt(p.errors) }),
        h("td", { class: "num", text: fmtInterval(p.score, p.ci_low, p.ci_high) }),
        h("td", { class: "num", text: fmtUsd(p.shadow_cost_usd) }), h("td", { class: "num", text: fmtPct(p.savings) }),
        h("td", { class: "num", text: fmtMs(p.primary_latency_ms) + " → " + fmtMs(p.shadow_latency_ms) })));
      parts.push(h("h3", { class: "small", text: "Shadow traffic" }));
      parts.push(h("table", { class: "data shadow" }, h("thead", null, head), h("tbody", null, ...rows)));
    }
    host.replaceChildren(...parts);
  }

  function renderBatches(b) {
    const host = $("batches");
    const note = $("batches-note");
    if (!b.data || !b.data.length) {
      note.textContent = "";
      host.replaceChildren(h("p", { class: "muted", id: "batches-empty" },
        "No batches yet. Upload a JSONL file to ", h("code", { text: "POST /v1/files" }),
        " and create one with ", h("code", { text: "POST /v1/batches" }), "."));
      return;
    }
    const saved = b.data.reduce((sum, x) => sum + x.hedge.savings_usd, 0);
    note.textContent = b.data.length + " newest · saved " + fmtUsd(saved);
    const head = h("tr", null, ...["Batch", "Status", "Progress", "Deadline", "Plan", "Cost", "Saved"].map(
      (t, i) => h("th", { class: i >= 5 ? "num" : "", text: t })));
    const rows = b.data.map((x) => {
      const c = x.request_counts;
      const done = c.completed + c.failed;
      const tone = x.status === "completed" ? "pass" : x.status === "failed" || x.status === "expired" ? "fail" : "";
      return h("tr", { dataset: { batch: x.id, status: x.status } },
        h("td", { text: x.id }),
        h("td", null, h("span", { class: "badge " + tone, text: x.status })),
        h("td", { text: done + " / " + c.total + (c.failed ? " (" + c.failed + " failed)" : "") }),
        h("td", { text: fmtStamp(x.hedge.deadline) }),
        h("td", { class: "muted", text: x.hedge.plan ? x.hedge.plan.reason : "" }),
        h("td", { class: "num", text: fmtUsd(x.hedge.cost_usd) }),
        h("td", { class: "num", text: fmtUsd(x.hedge.savings_usd) }));
    });
    host.replaceChildren(h("table", { class: "data batches" }, h("thead", null, head), h("tbody", null, ...rows)));
  }

  function renderAll() {
    const d = state.data;
    if (d.summary) renderSummary(d.summary);
    if (d.series) { renderSpend(d.series); renderSavings(d.series, d.summary); renderTraffic(d.series); }
    if (d.latency) renderLatency(d.latency);
    if (d.breakers) renderBreakers(d.breakers);
    if (d.conformance) renderConformance(d.conformance);
    if (d.experiments) renderExperiments(d.experiments);
    if (d.batches) renderBatches(d.batches);
  }

  function renderCharts() {
    const d = state.data;
    if (d.series) { renderSpend(d.series); renderSavings(d.series, d.summary); renderTraffic(d.series); }
    if (d.latency) latencyChart($("chart-latency"), d.latency.deployments);
  }

  // -- the request log -----------------------------------------------------------------------------

  function fillSelect(select, values, allLabel) {
    const current = select.value;
    const options = [h("option", { value: "", text: allLabel })];
    const all = values.slice();
    if (current && !all.includes(current)) all.push(current);
    for (const v of all) options.push(h("option", { value: v, text: v }));
    select.replaceChildren(...options);
    select.value = current;
  }

  async function refreshLog(withFacets) {
    const seq = ++state.logSeq;
    const f = state.log;
    const data = await api("requests", {
      since: state.range, limit: PAGE_SIZE, offset: f.offset, q: f.q, provider: f.provider,
      model: f.model, status: f.status, facets: withFacets ? 1 : "",
    });
    if (seq !== state.logSeq) return; // a newer query has been sent since
    if (data.facets) {
      fillSelect($("log-provider"), data.facets.provider, "All providers");
      fillSelect($("log-model"), data.facets.model, "All models");
    }
    state.log.total = data.total;
    const body = $("table-log").tBodies[0];
    body.dataset.total = String(data.total);
    if (!data.rows.length) {
      body.replaceChildren(h("tr", null, h("td", { class: "empty-row", colspan: 10, text: "No requests match." })));
    } else {
      body.replaceChildren(...data.rows.map(logRow));
    }
    const first = data.total ? data.offset + 1 : 0;
    const last = data.offset + data.rows.length;
    $("log-page").textContent = first + "–" + last + " of " + fmtInt(data.total);
    $("log-count").textContent = fmtInt(data.total) + (data.total === 1 ? " request" : " requests");
    $("log-prev").disabled = data.offset <= 0;
    $("log-next").disabled = last >= data.total;
  }

  function logRow(r) {
    const ok = r.status < 400;
    const tr = h("tr", {
      tabindex: 0, class: r.request_id === state.detailId ? "selected" : null,
      dataset: { id: r.request_id, provider: r.provider || "", status: String(r.status) },
    },
    h("td", { text: fmtClock(r.ts, true), title: new Date(r.ts * 1000).toISOString() }),
    h("td", null, h("span", { class: "badge " + (ok ? "ok" : "error"), text: String(r.status) })),
    h("td", { text: r.alias || "–" }),
    h("td", { text: r.provider ? r.provider + " / " + r.model : "–" }),
    h("td", { text: r.key_name || r.key_id || "–" }),
    h("td", { class: "num", text: fmtInt(r.prompt_tokens) + " / " + fmtInt(r.completion_tokens) }),
    h("td", {
      class: "num" + (r.price_missing || r.usage_missing ? " flagged" : ""),
      text: fmtUsd(r.cost_usd) + (r.price_missing || r.usage_missing ? " !" : ""),
      title: r.price_missing ? "No price for this deployment: booked at $0" : r.usage_missing ? "The upstream reported no usage" : null,
    }),
    h("td", { class: "num", text: fmtMs(r.latency_ms) }),
    h("td", { class: "num", text: r.stream ? fmtMs(r.ttft_ms) : "–" }),
    h("td", { class: "num", text: String(r.attempts) }));
    tr.addEventListener("click", () => openDetail(r.request_id));
    tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openDetail(r.request_id); });
    return tr;
  }

  function prettyBody(text) {
    if (text == null) return null;
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (_) { return text; }
  }

  function setBody(pre, text) {
    const pretty = prettyBody(text);
    pre.classList.toggle("none", pretty == null);
    pre.textContent = pretty == null
      ? "Not logged for this request. Bodies are kept only with server.log_bodies: true in the config."
      : pretty;
  }

  // One step as x-hedge-route spells it: "provider/model=ok", "provider/model=<error code>", "cache=hit".
  function routeStep(step) {
    if (step.outcome === "cache_hit") return "cache=hit";
    if (step.outcome === "escalated") return "escalate:" + step.detail + "->" + step.target;
    return step.target + "=" + (step.outcome === "failed" ? step.detail : step.outcome);
  }

  async function openDetail(id) {
    state.detailId = id;
    for (const tr of $("table-log").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.id === id);
    let d;
    try { d = await api("requests/" + encodeURIComponent(id)); } catch (e) { handleError(e); return; }
    const fields = [
      ["Request id", d.request_id],
      ["Time", new Date(d.ts * 1000).toLocaleString()],
      ["Status", String(d.status)],
      ["Endpoint", d.endpoint],
      ["Alias", d.alias],
      ["Provider", d.provider],
      ["Model", d.model],
      ["Stream", d.stream ? "yes" : "no"],
      ["Tokens", fmtInt(d.prompt_tokens) + " in · " + fmtInt(d.completion_tokens) + " out · " + fmtInt(d.cached_tokens)
        + " cached · " + fmtInt(d.cache_write_tokens || 0) + " cache writes · " + fmtInt(d.reasoning_tokens || 0) + " reasoning"],
      ["Cost", fmtUsd(d.cost_usd) + (d.price_missing ? " (no price for this deployment: booked at $0)" : "")
        + (d.usage_missing ? " (the upstream reported no usage)" : "")],
      ["Cost split", d.charges_usd == null ? "–" : Object.entries(d.charges_usd).filter(([, v]) => v).map(([k, v]) => k.replace("_", " ") + " " + fmtUsd(v)).join(" · ")],
      ["Service tier", d.service_tier],
      ["Baseline cost", d.baseline_cost_usd == null ? "–" : fmtUsd(d.baseline_cost_usd)],
      ["Latency", fmtMs(d.latency_ms)],
      ["Time to first token", fmtMs(d.ttft_ms)],
      ["Attempts", String(d.attempts)],
      ["Route", d.route == null ? "not recorded (written before routes were kept)" : d.route.map(routeStep).join(", ")],
      ["Key", d.key_name || d.key_id || "–"],
      ["Team", d.team],
      ["Tags", d.tags.join(", ")],
      ["Cache hit", d.cache_hit ? "yes" : "no"],
      ["Error", d.error],
    ];
    $("detail-fields").replaceChildren(...fields.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v == null || v === "" ? "–" : v })]));
    $("detail-title").textContent = "Request " + d.request_id;
    setBody($("detail-request"), d.request_body);
    setBody($("detail-response"), d.response_body);
    $("detail").hidden = false;
  }

  function closeDetail() {
    $("detail").hidden = true;
    state.detailId = null;
    for (const tr of $("table-log").tBodies[0].rows) tr.classList.remove("selected");
  }

  // -- refresh, login, controls --------------------------------------------------------------------

  function setBanner(text) {
    const b = $("banner");
    b.textContent = text || "";
    b.hidden = !text;
  }

  function handleError(e) {
    if (e instanceof AuthError) {
      sessionStorage.removeItem(KEY_STORAGE);
      state.key = null;
      showLogin("The gateway refused this key: " + e.message);
    } else {
      setBanner("Could not load the dashboard data: " + (e && e.message ? e.message : e));
    }
  }

  async function refreshAll() {
    if (state.busy || !state.key) return;
    state.busy = true;
    const since = state.range;
    try {
      const [summary, series, latency, breakers, conformance, experiments, batches] = await Promise.all([
        api("summary", { since }),
        api("timeseries", { since, by: state.by, bucket: "auto" }),
        api("latency", { since }),
        api("breakers"),
        api("conformance"),
        api("experiments"),
        api("batches"),
      ]);
      state.data = { summary, series, latency, breakers, conformance, experiments, batches };
      renderAll();
      await refreshLog(true);
      setBanner(null);
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
    } catch (e) {
      handleError(e);
    } finally {
      state.busy = false;
    }
  }

  async function refreshSeries() {
    try {
      state.data.series = await api("timeseries", { since: state.range, by: state.by, bucket: "auto" });
      renderSpend(state.data.series);
    } catch (e) { handleError(e); }
  }

  function schedule() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    if (state.auto && state.key) {
      state.timer = setInterval(() => { if (!document.hidden) refreshAll(); }, REFRESH_MS);
    }
  }

  function savePrefs() {
    try {
      localStorage.setItem(PREFS_STORAGE, JSON.stringify({ range: state.range, by: state.by, auto: state.auto }));
    } catch (_) { /* storage may be unavailable; preferences are a nicety */ }
  }

  function loadPrefs() {
    try {
      const p = JSON.parse(localStorage.getItem(PREFS_STORAGE) || "{}");
      if (typeof p.range === "string" && [...$("range").options].some((o) => o.value === p.range)) state.range = p.range;
      if (typeof p.by === "string" && document.querySelector('.seg-btn[data-by="' + p.by + '"]')) state.by = p.by;
      if (typeof p.auto === "boolean") state.auto = p.auto;
    } catch (_) { /* ignore unreadable preferences */ }
    $("range").value = state.range;
    $("auto").checked = state.auto;
    for (const b of document.querySelectorAll(".seg-btn")) b.classList.toggle("active", b.dataset.by === state.by);
  }

  function showLogin(message) {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-key").value = "";
    $("login-key").focus();
  }

  function showApp() {
    $("login").hidden = true;
    $("app").hidden = false;
    refreshAll();
    schedule();
  }

  function debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }

  const reloadLog = debounce(() => { refreshLog(false).catch(handleError); }, 250);

  function init() {
    loadPrefs();
    $("login-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const key = $("login-key").value.trim();
      if (!key) return;
      $("login-submit").disabled = true;
      $("login-error").textContent = "";
      state.key = key;
      try {
        await api("summary", { since: "1m" });
        sessionStorage.setItem(KEY_STORAGE, key);
        showApp();
      } catch (e) {
        state.key = null;
        $("login-error").textContent = e instanceof AuthError
          ? "That is not the master key (" + e.message + ")"
          : "Could not reach the gateway: " + e.message;
      } finally {
        $("login-submit").disabled = false;
      }
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORAGE);
      state.key = null;
      closeDetail();
      showLogin("");
    });
    $("refresh").addEventListener("click", refreshAll);
    $("auto").addEventListener("change", (ev) => { state.auto = ev.target.checked; savePrefs(); schedule(); });
    $("range").addEventListener("change", (ev) => {
      state.range = ev.target.value;
      state.log.offset = 0;
      savePrefs();
      refreshAll();
    });
    for (const b of document.querySelectorAll(".seg-btn")) {
      b.addEventListener("click", () => {
        state.by = b.dataset.by;
        for (const o of document.querySelectorAll(".seg-btn")) o.classList.toggle("active", o === b);
        savePrefs();
        refreshSeries();
      });
    }
    $("log-filters").addEventListener("submit", (ev) => ev.preventDefault());
    $("log-q").addEventListener("input", (ev) => { state.log.q = ev.target.value; state.log.offset = 0; reloadLog(); });
    for (const [id, field] of [["log-provider", "provider"], ["log-model", "model"], ["log-status", "status"]]) {
      $(id).addEventListener("change", (ev) => { state.log[field] = ev.target.value; state.log.offset = 0; reloadLog(); });
    }
    $("log-prev").addEventListener("click", () => { state.log.offset = Math.max(0, state.log.offset - PAGE_SIZE); reloadLog(); });
    $("log-next").addEventListener("click", () => { state.log.offset += PAGE_SIZE; reloadLog(); });
    $("detail-close").addEventListener("click", closeDetail);
    document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && !$("detail").hidden) closeDetail(); });
    window.addEventListener("resize", debounce(renderCharts, 150));

    state.key = sessionStorage.getItem(KEY_STORAGE);
    if (state.key) showApp(); else showLogin("");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();

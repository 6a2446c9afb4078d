// The live dashboard: one EventSource on /api/v1/dashboard/stream, one
// frame a second, appended to six uPlot charts that keep the last two
// minutes. On connecting, the server first sends the frames of its last two
// minutes, so a page opened after a lab run draws that run. All arithmetic
// (rates, quantiles) is done by the server from the instance's own metrics;
// the page only draws what it is sent.
"use strict";

(function () {
  const KEEP = 120; // points per chart: two minutes at one frame a second
  const MIN_SPAN = 30; // seconds the time axis shows at least
  const EMPTY_SPAN = 60; // seconds the time axis shows before any frame
  const GAP_S = 5; // a silence longer than this is drawn as a gap (between two lab runs)
  const RETRY_MS = [500, 1000, 2000]; // waits before reconnecting, then the last again
  const STREAM = "/api/v1/dashboard/stream";

  const css = getComputedStyle(document.documentElement);
  const color = (name, fallback) => (css.getPropertyValue(name) || "").trim() || fallback;
  const C = {
    ok: color("--ok", "#2b8a3e"),
    warn: color("--warn", "#a15c07"),
    bad: color("--bad", "#c92a2a"),
    info: color("--info", "#1c64c8"),
    accent: color("--accent", "#e8590c"),
    muted: color("--muted", "#5d6676"),
    border: color("--border", "#e2e5ea"),
  };

  // Each chart: its series (after the time axis) and how to read them from
  // a frame. A null is drawn as a gap (no data in that second).
  const charts = {
    purchases: {
      el: "chart-purchases", now: "now-purchases",
      series: [
        { label: "202 accepted", stroke: C.ok, pick: (f) => f.purchases && f.purchases.accepted },
        { label: "409 sold_out", stroke: C.accent, pick: (f) => f.purchases && f.purchases.sold_out },
        { label: "429 rate_limited", stroke: C.warn, pick: (f) => f.purchases && f.purchases.rate_limited },
        { label: "503 unavailable", stroke: C.bad, pick: (f) => f.purchases && f.purchases.unavailable },
        { label: "403 bots refused", stroke: C.info, dash: [2, 3], pick: (f) => f.purchases && f.purchases.refused },
        { label: "other", stroke: C.muted, pick: (f) => f.purchases && f.purchases.other },
      ],
      fmt: (v) => v.toFixed(v >= 10 ? 0 : 1) + "/s",
    },
    stock: {
      el: "chart-stock", now: "now-stock",
      series: [
        // Dashed on top, so the two lines stay apart to the eye when they agree.
        { label: "database", stroke: C.info, pick: (f) => sum(f.items, "stock_db") },
        { label: "Redis", stroke: C.accent, dash: [6, 4], pick: (f) => sum(f.items, "stock_redis") },
      ],
      fmt: (v) => String(Math.round(v)),
    },
    orders: {
      el: "chart-orders", now: "now-orders",
      series: [
        { label: "queued (pending)", stroke: C.warn, pick: (f) => sum(f.items, "pending") },
        { label: "confirmed", stroke: C.ok, pick: (f) => sum(f.items, "confirmed") },
      ],
      fmt: (v) => String(Math.round(v)),
    },
    latency: {
      el: "chart-latency", now: "now-latency",
      series: [
        { label: "p50", stroke: C.info, pick: (f) => f.latency_ms && f.latency_ms.p50 },
        { label: "p99", stroke: C.bad, pick: (f) => f.latency_ms && f.latency_ms.p99 },
      ],
      fmt: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(2)) + " ms",
    },
    // The waiting rooms (queue items); absent from pages without the panel.
    queue: {
      el: "chart-queue", now: "now-queue",
      series: [
        { label: "waiting", stroke: C.warn, pick: (f) => f.queue && f.queue.waiting },
        { label: "admitted/s", stroke: C.ok, pick: (f) => f.queue && f.queue.admitted_per_s },
        { label: "admissions used", stroke: C.info, dash: [2, 3], pick: (f) => f.queue && f.queue.used },
      ],
      fmt: (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)),
    },
    lag: {
      el: "chart-lag", now: "now-lag",
      series: [{ label: "lag", stroke: C.accent, pick: (f) => f.lag }],
      fmt: (v) => String(Math.round(v)),
    },
  };

  // sum adds a field over the sales on; null when no sale is on, so the
  // chart shows a gap rather than a misleading zero.
  function sum(items, key) {
    if (!items || items.length === 0) return null;
    return items.reduce((n, it) => n + it[key], 0);
  }

  function value(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  // xRange is the time axis: at least MIN_SPAN seconds ending at the last
  // sample; with no sample yet (a page opened between two lab runs), the
  // last minute, never the epoch's decades.
  function xRange(u, min, max) {
    if (!Number.isFinite(min) || !Number.isFinite(max)) {
      const now = Date.now() / 1000;
      return [now - EMPTY_SPAN, now];
    }
    return [Math.min(min, max - MIN_SPAN), max];
  }

  // yRange starts at 0, or below it for a stock the naive ledger of lab
  // oversell drove negative, with some room above the highest value.
  function yRange(name, min, max) {
    const floor = name === "latency" ? 1 : 5;
    const lo = Number.isFinite(min) ? Math.min(0, min * 1.1) : 0;
    const hi = Number.isFinite(max) ? Math.max(max * 1.1, floor) : floor;
    return [lo, hi];
  }

  function build(name, c) {
    const el = document.getElementById(c.el);
    c.data = [[]].concat(c.series.map(() => []));
    const axis = { stroke: C.muted, grid: { stroke: C.border, width: 1 }, ticks: { stroke: C.border, width: 1 } };
    c.plot = new uPlot({
      width: Math.max(el.clientWidth, 280),
      height: 220,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      // At least MIN_SPAN seconds wide and scrolling, so a new page does not
      // stretch its first seconds across the whole width.
      scales: { x: { time: true, range: xRange }, y: { range: (u, min, max) => yRange(name, min, max) } },
      axes: [axis, Object.assign({ size: 56 }, axis)],
      // uPlot's own rule for points: drawn only where the samples are
      // sparse, so a short lab run's few seconds (and a lone latency
      // sample between gaps) show, and two busy minutes stay lines.
      series: [{}].concat(c.series.map((s) => ({ label: s.label, stroke: s.stroke, dash: s.dash, width: 2, points: { size: 5, fill: s.stroke } }))),
    }, c.data, el);
    new ResizeObserver(() => {
      const w = Math.max(el.clientWidth, 280);
      if (w !== c.plot.width) c.plot.setSize({ width: w, height: 220 });
    }).observe(el);
  }

  function showNow(c, frame) {
    const dl = document.getElementById(c.now);
    dl.replaceChildren(...c.series.map((s) => {
      const v = value(s.pick(frame));
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = s.label;
      dd.textContent = v === null ? "–" : c.fmt(v);
      dd.style.color = s.stroke;
      div.append(dt, dd);
      return div;
    }));
  }

  function showItems(frame) {
    const p = document.getElementById("stock-items");
    if (frame.stock_error) {
      p.textContent = "Stock unavailable: " + frame.stock_error;
      return;
    }
    if (!frame.items.length) {
      p.textContent = "No sale is on.";
      return;
    }
    p.textContent = frame.items.map((it) =>
      "#" + it.id + " " + it.name + ": Redis " + it.stock_redis + ", database " + it.stock_db +
      ", queued " + it.pending + ", confirmed " + it.confirmed).join(" · ");
  }

  const conn = document.getElementById("conn");
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  let lastT = 0; // seconds; the newest frame drawn
  let drawing = false;

  function push(c, t, row) {
    c.data[0].push(t);
    row.forEach((v, i) => c.data[i + 1].push(v));
    if (c.data[0].length > KEEP) c.data.forEach((a) => a.shift());
  }

  // draw redraws the charts once per animation frame, so the two minutes of
  // history a new stream starts with cost one redraw, not 120.
  function draw() {
    if (drawing) return;
    drawing = true;
    requestAnimationFrame(() => {
      drawing = false;
      for (const c of Object.values(charts)) c.plot.setData(c.data);
    });
  }

  function onFrame(frame) {
    const t = frame.t / 1000;
    // A reconnecting page is sent the history again: what it drew is skipped.
    if (!(t > lastT)) return;
    const gap = lastT > 0 && t - lastT > GAP_S;
    for (const c of Object.values(charts)) {
      // A row of nulls breaks the line, so a next run's first frame is not
      // joined to the last one's across the silence between them.
      if (gap) push(c, lastT + 1, c.series.map(() => null));
      push(c, t, c.series.map((s) => value(s.pick(frame))));
      showNow(c, frame);
    }
    lastT = t;
    draw();
    showItems(frame);
    conn.className = "banner banner-ok";
    conn.textContent = "Live · updated " + timeFmt.format(new Date(frame.t));
    window.seckillDashboard.frames++;
  }

  for (const [name, c] of Object.entries(charts)) build(name, c);
  // For tests and the curious: the charts and how many frames arrived.
  window.seckillDashboard = { charts, frames: 0 };

  // The stream: one EventSource at a time, opened again by hand after an
  // error. A browser's own retry gives up for good on some failures (the
  // instance gone between two lab runs, a proxy's error page), so the page
  // does not rely on it. The charts keep what they have: the next lab
  // run's frames (its history first) follow the last one's after a gap.
  let es = null;
  let failures = 0;

  function connect() {
    es = new EventSource(STREAM);
    es.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (e) {
        return; // a broken frame is skipped; the next one comes in a second
      }
      failures = 0;
      onFrame(frame);
    };
    es.onopen = () => {
      conn.className = "banner banner-ok";
      conn.textContent = "Live";
    };
    es.onerror = () => {
      es.close();
      const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures++;
      conn.className = "banner banner-warn";
      conn.textContent = "Disconnected; reconnecting… (a lab's next run starts a new system on the same address)";
      window.seckillDashboard.reconnects++;
      setTimeout(connect, wait);
    };
  }
  window.seckillDashboard.reconnects = 0;
  connect();
})();

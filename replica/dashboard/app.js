// The tally dashboard: everything comes from this replica's /events stream (no other
// request, no other origin). EventSource reconnects by itself after the replica restarts;
// the server's "retry:" says how soon.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const fmt = new Intl.NumberFormat("en-US");
  const WINDOW_S = 300;
  let last = null; // the last total event, and when it came
  const samples = []; // [seconds, cluster_total], one a second
  let replicas = [];

  function setBadge(id, up) { $(id).dataset.state = up ? "up" : "down"; }

  function ago(ms) {
    if (ms < 0) return "–";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    if (ms < 3600000) return Math.floor(ms / 60000) + " min";
    return Math.floor(ms / 3600000) + " h";
  }

  function onTotal(d) {
    last = { d: d, at: Date.now() };
    $("total").textContent = fmt.format(d.cluster_total);
    $("instance").textContent = d.instance;
    setBadge("redis", d.redis);
    setBadge("mqtt", d.mqtt);
  }

  function onReplicas(list) {
    replicas = list.slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    renderReplicas();
  }

  function renderReplicas() {
    const body = $("replicas");
    const now = Date.now();
    const peak = Math.max(1, ...replicas.map((r) => r.served));
    body.replaceChildren(...replicas.map((r) => {
      const tr = document.createElement("tr");
      tr.className = r.state;
      tr.dataset.id = r.id;
      const cells = [r.id, r.state, null, ago(now - r.last_seen) + " ago"];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        if (i === 1) td.className = "state-" + r.state;
        if (i === 2) {
          td.className = "bar";
          const bar = document.createElement("i");
          bar.style.width = Math.max(0.5, (80 * r.served) / peak) + "%";
          const n = document.createElement("span");
          n.className = "served";
          n.textContent = fmt.format(r.served);
          td.append(bar, n);
        } else {
          td.textContent = text;
        }
        tr.append(td);
      });
      return tr;
    }));
    $("online").textContent = replicas.filter((r) => r.state === "online").length;
    $("known").textContent = replicas.length;
  }

  function sample() {
    const t = Date.now() / 1000;
    if (last) samples.push([t, last.d.cluster_total]);
    while (samples.length && samples[0][0] < t - WINDOW_S - 1) samples.shift();
    $("age").textContent = last ? ago(last.d.age_ms + (Date.now() - last.at)) : "–";
    renderReplicas();
    draw();
  }

  function rates() {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = samples[i][0] - samples[i - 1][0];
      if (dt > 0) out.push([samples[i][0], Math.max(0, (samples[i][1] - samples[i - 1][1]) / dt)]);
    }
    return out;
  }

  function draw() {
    const c = $("chart");
    const ctx = c.getContext("2d");
    const w = c.width, h = c.height, pad = 40;
    ctx.clearRect(0, 0, w, h);
    const r = rates();
    const peak = Math.max(10, ...r.map((p) => p[1]));
    const now = Date.now() / 1000;
    // the last five minutes, or since the page opened (at least 30 s) while it is younger
    const span = Math.min(WINDOW_S, Math.max(30, samples.length ? now - samples[0][0] : 30));
    ctx.strokeStyle = "#2a323b";
    ctx.fillStyle = "#8b96a1";
    ctx.font = "12px system-ui, sans-serif";
    for (let k = 0; k <= 4; k++) {
      const y = h - pad / 2 - ((h - pad) * k) / 4;
      ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w, y); ctx.stroke();
      ctx.fillText(fmt.format(Math.round((peak * k) / 4)), 2, y + 4);
    }
    ctx.fillText(span >= WINDOW_S ? "-5 min" : "-" + Math.round(span) + " s", pad, h - 2);
    ctx.fillText("now", w - 26, h - 2);
    ctx.strokeStyle = "#58a6ff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    r.forEach((p, i) => {
      const x = pad + ((w - pad) * (p[0] - (now - span))) / span;
      const y = h - pad / 2 - ((h - pad) * p[1]) / peak;
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    $("rate-now").textContent = r.length ? fmt.format(Math.round(r[r.length - 1][1])) : "–";
  }

  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("open", () => setBadge("stream", true));
    es.addEventListener("error", () => {
      setBadge("stream", false);
      setBadge("redis", false);
      setBadge("mqtt", false);
      // EventSource retries a dropped stream itself, but gives up on an answer that is no
      // stream (a 503 while the replica starts or is full): then start over.
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    });
    es.addEventListener("total", (e) => onTotal(JSON.parse(e.data)));
    es.addEventListener("replicas", (e) => onReplicas(JSON.parse(e.data).replicas));
  }

  connect();
  setInterval(sample, 1000);
})();

// ticktide live page: one WebSocket to the gateway, plain DOM updates, no build step.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const MAX_SIGNALS = 25, MAX_ALERTS = 10;
  let ws = null, symbols = [];

  function params() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    return { token: p.get("token") || sessionStorage.getItem("ticktide.token") || "",
             symbols: p.get("symbols") || sessionStorage.getItem("ticktide.symbols") || "" };
  }

  function setStatus(text, state) { const s = $("#status"); s.textContent = text; s.dataset.state = state; }

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    return Number(x).toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(2) + "%"; }
  function time(ns) { return new Date(Number(ns) / 1e6).toISOString().replace("T", " ").slice(0, 19); }

  function priceRow(symbol) {
    let row = document.querySelector(`#prices tr[data-symbol="${CSS.escape(symbol)}"]`);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.symbol = symbol;
      for (const cls of ["symbol", "price", "change", "source", "updated"]) {
        const td = document.createElement("td"); td.className = cls; row.appendChild(td);
      }
      row.querySelector(".symbol").textContent = symbol;
      const body = $("#prices tbody");
      const after = [...body.children].find((r) => r.dataset.symbol > symbol);
      body.insertBefore(row, after || null);
    }
    return row;
  }

  function onPrice(symbol, price, source, tsEvent) {
    if (price === null || price === undefined) return;
    const row = priceRow(symbol);
    const prev = row.dataset.first ? Number(row.dataset.first) : price;
    if (!row.dataset.first) row.dataset.first = String(price);
    row.querySelector(".price").textContent = fmt(price, price < 10 ? 4 : 2);
    row.dataset.price = String(price);
    const change = prev ? price / prev - 1 : 0;
    const c = row.querySelector(".change");
    c.textContent = pct(change); c.className = "change " + (change > 0 ? "up" : change < 0 ? "down" : "");
    row.querySelector(".source").textContent = source;
    row.querySelector(".updated").textContent = time(tsEvent);
  }

  function onSignal(s) {
    const li = document.createElement("li");
    li.className = "signal " + s.action;
    li.dataset.symbol = s.symbol; li.dataset.action = s.action; li.dataset.signalId = s.signal_id;
    li.textContent = `${time(s.ts_event)} ${s.symbol} ${s.action.toUpperCase()} (${s.type}, ${s.urgency}, ` +
      `strength ${fmt(s.strength, 2)}): ${s.reason}`;
    const list = $("#signals");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_SIGNALS) list.removeChild(list.lastChild);
  }

  function onRisk(r) {
    const box = $("#risk");
    box.dataset.portfolio = r.portfolio_id;
    const mine = Object.entries(r.exposures || {})
      .filter(([sym]) => symbols.length === 0 || symbols.includes(sym))
      .map(([sym, w]) => `<dt>${esc(sym)}</dt><dd class="exposure" data-symbol="${esc(sym)}">${pct(w)}</dd>`).join("");
    box.innerHTML = `<dl>
      <dt>Portfolio</dt><dd>${esc(r.portfolio_id)}</dd>
      <dt>Value</dt><dd class="value">${fmt(r.value, 2)}</dd>
      <dt>P&amp;L</dt><dd class="pnl">${fmt(r.pnl, 2)}</dd>
      <dt>VaR 95%</dt><dd class="var">${pct(r.var_95_historical)}</dd>
      <dt>Max drawdown</dt><dd class="drawdown">${pct(r.max_drawdown)}</dd>
      <dt>Risk level</dt><dd class="risk-level">${esc(r.risk_level || "–")}</dd>
      ${mine}</dl><p class="dim">as of ${time(r.ts_event)}</p>`;
  }

  function onAlert(a) {
    const li = document.createElement("li");
    li.className = "alert " + a.severity;
    li.textContent = `${time(a.ts_event)} [${a.severity}] ${a.symbol || ""} ${a.message}`;
    const list = $("#alerts");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_ALERTS) list.removeChild(list.lastChild);
  }

  function onMessage(msg) {
    if (msg.type === "welcome") {
      setStatus("connected", "open");
      const sub = { action: "subscribe", topics: ["ticks", "features", "signals", "risk", "alerts"] };
      if (symbols.length) sub.symbols = symbols;
      ws.send(JSON.stringify(sub));
    } else if (msg.type === "subscribed") {
      setStatus("subscribed: " + Object.keys(msg.subscriptions).join(", ") +
                (symbols.length ? " for " + symbols.join(", ") : " (all symbols)"), "open");
    } else if (msg.type === "error") {
      setStatus("error: " + msg.error, "error");
    } else if (msg.type === "event") {
      const e = msg.event;
      if (msg.topic === "ticks") {
        const p = e.price !== null ? e.price : (e.bid !== null && e.ask !== null ? (e.bid + e.ask) / 2 : null);
        onPrice(e.symbol, p, e.venue + " " + e.kind, e.ts_event);
      } else if (msg.topic === "features") {
        if (e.source === "bar") onPrice(e.symbol, e.price, "bar", e.ts_event);
      } else if (msg.topic === "signals") onSignal(e);
      else if (msg.topic === "risk") onRisk(e);
      else if (msg.topic === "alerts") onAlert(e);
    }
  }

  function connect(token, symbolText) {
    if (ws) ws.close(1000);
    symbols = symbolText.split(",").map((s) => s.trim().toUpperCase()).filter(Boolean);
    sessionStorage.setItem("ticktide.token", token);
    sessionStorage.setItem("ticktide.symbols", symbols.join(","));
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    setStatus("connecting…", "connecting");
    const sock = new WebSocket(url);
    ws = sock;
    sock.onopen = () => sock.send(JSON.stringify({ action: "auth", token: token }));
    sock.onmessage = (ev) => { try { onMessage(JSON.parse(ev.data)); } catch (err) { console.error(err); } };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      setStatus(`closed (${ev.code}${ev.reason ? ": " + ev.reason : ""})`, "closed");
      // reconnect unless the gateway refused us for good
      if (![4001, 4029, 1000].includes(ev.code)) setTimeout(() => connect(token, symbols.join(",")), 2000);
    };
  }

  $("#connect").addEventListener("submit", (ev) => {
    ev.preventDefault();
    connect($("#token").value, $("#symbols").value);
  });
  const p = params();
  $("#symbols").value = p.symbols;
  if (p.token) { $("#token").value = p.token; connect(p.token, p.symbols); }
})();

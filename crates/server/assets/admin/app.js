// Live updates for the dashboard: the overview's figures and session statuses, and a
// session's QR code and status, over Server-Sent Events. Pages work without it.
"use strict";

function setText(selector, value) {
  document.querySelectorAll(selector).forEach((el) => { el.textContent = value; });
}

// Browsers allow six connections per server over HTTP/1.1 and each stream holds one: close
// streams when the page goes away, or the next pages wait for a free connection.
const streams = [];
window.addEventListener("pagehide", () => streams.forEach((s) => s.close()));
window.addEventListener("pageshow", (e) => { if (e.persisted) window.location.reload(); });

function stream(url) {
  const source = new EventSource(url);
  streams.push(source);
  return source;
}

function liveOverview(url) {
  const source = stream(url);
  source.addEventListener("overview", (e) => {
    const stats = JSON.parse(e.data);
    document.querySelectorAll("[data-count]").forEach((el) => {
      const value = el.dataset.count.split(".").reduce((v, k) => (v == null ? v : v[k]), stats);
      if (value != null) el.textContent = value;
    });
    for (const [id, status] of Object.entries(stats.statuses || {})) {
      document.querySelectorAll(`[data-session-status="${CSS.escape(id)}"]`).forEach((el) => { el.textContent = status; });
    }
    const chart = document.querySelector("[data-chart]");
    if (chart && stats.chart) chart.innerHTML = stats.chart; // server-drawn SVG of numbers only
  });
}

function liveSession(id) {
  const base = `/admin/sessions/${encodeURIComponent(id)}`;
  const source = stream(`${base}/events`);
  const img = document.getElementById("qr");
  const caption = document.getElementById("qr-caption");
  const linking = document.getElementById("linking");
  source.addEventListener("qr", (e) => {
    const data = JSON.parse(e.data);
    img.src = `${base}/qr.png?v=${encodeURIComponent(data.expires_at)}`;
    img.dataset.qr = data.qr;
    img.hidden = false;
    caption.textContent = "Scan this code with WhatsApp.";
    linking.hidden = false;
  });
  source.addEventListener("pair_code", (e) => {
    const code = document.getElementById("pair-code");
    code.textContent = `Pairing code: ${JSON.parse(e.data).code}`;
    code.hidden = false;
  });
  source.addEventListener("status", (e) => {
    const data = JSON.parse(e.data);
    setText("#session-status", data.status);
    setText("#session-reason", data.reason || "");
    if (data.account) {
      setText("#session-account", data.account.phone + (data.account.push_name ? ` (${data.account.push_name})` : ""));
    }
    if (data.status === "connected") {
      linking.hidden = true;
      img.hidden = true;
    }
  });
  source.addEventListener("deleted", () => { window.location = "/admin/sessions"; });
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.querySelector("[data-live]");
  if (live) liveOverview(live.dataset.live);
  const session = document.querySelector("[data-session]");
  if (session) liveSession(session.dataset.session);
  // Forms whose result shows up in the live stream post in the background: the page stays.
  document.querySelectorAll("form[data-background]").forEach((form) => {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const status = form.querySelector("[role=status]");
      const response = await fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)) });
      if (status) status.textContent = response.ok ? form.dataset.background : "That did not work; reload the page.";
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (e) => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
  });
});

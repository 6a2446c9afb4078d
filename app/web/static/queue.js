// The waiting room on the sale page, for items whose protection is
// "queue": Buy joins the line; the card then shows "You are #N in line,
// about M s", polled once a second, and when the line admits the buyer,
// Buy again with the admission's countdown. sale.js asks admission(card,
// session) before a purchase: a ticket means buy now, null means the line
// is handling it. It only uses the public JSON API (docs/QUEUE.md).
"use strict";

(function () {
  const { api } = window.seckill;
  const POLL_MS = 1000;
  const TICK_MS = 250;

  /** item id -> {state, position, eta, ticket, expMs, el, timer, token} */
  const lines = new Map();

  function lineEl(card) {
    let el = card.el.querySelector(".queue-line");
    if (!el) {
      el = document.createElement("p");
      el.className = "queue-line";
      el.dataset.testid = "queue-" + card.id;
      el.setAttribute("role", "status");
      el.setAttribute("aria-live", "polite");
      const actions = card.el.querySelector(".actions");
      actions.parentNode.insertBefore(el, actions);
    }
    return el;
  }

  function show(card, q) {
    const el = lineEl(card);
    const buy = card.el.querySelector(".buy");
    let text = "";
    switch (q.state) {
      case "waiting":
        text = "You are #" + q.position + " in line, about " + q.eta + " s";
        if (buy) buy.disabled = true;
        break;
      case "admitted": {
        const left = Math.max(0, Math.ceil((q.expMs - Date.now()) / 1000));
        text = "Your turn: buy within " + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
        if (buy) buy.disabled = left <= 0;
        if (left <= 0) q.state = "expired";
        break;
      }
      case "sold_out":
        text = "Sold out. If a unit comes back, the next in line gets it.";
        break;
      case "expired":
        text = "Your admission expired; its chance went to the next in line.";
        break;
      case "ended":
        text = "The sale has ended.";
        break;
    }
    el.dataset.state = q.state;
    if (el.textContent !== text) el.textContent = text;
  }

  function apply(card, q, body) {
    q.state = body.state;
    q.position = body.position || 0;
    q.eta = body.eta_seconds || 0;
    if (body.state === "admitted") {
      q.ticket = body.ticket;
      q.expMs = Date.parse(body.expires_at);
    }
    show(card, q);
  }

  async function poll(card, q) {
    if (q.state === "admitted" || q.state === "expired" || q.state === "ended") return;
    const path = "/api/v1/items/" + encodeURIComponent(card.id) + "/queue";
    let r = await api("GET", path, { token: q.token });
    if (r.code === "not_in_line") {
      // The line was lost (a Redis wipe): take a place in the new one.
      r = await api("POST", path, { token: q.token });
    }
    if (r.ok && r.body) apply(card, q, r.body);
  }

  async function join(card, sess) {
    const q = { state: "joining", token: sess.token, position: 0, eta: 0, ticket: "", expMs: 0 };
    lines.set(card.id, q);
    const r = await api("POST", "/api/v1/items/" + encodeURIComponent(card.id) + "/queue", { token: sess.token });
    if (!r.ok || !r.body) {
      lines.delete(card.id);
      lineEl(card).textContent = r.message || "Could not join the line; try again.";
      return;
    }
    apply(card, q, r.body);
    q.timer = setInterval(() => poll(card, q), POLL_MS);
    q.tick = setInterval(() => show(card, q), TICK_MS);
  }

  // admission returns the admission ticket to buy with, or null after
  // joining the line (or while waiting in it).
  function admission(card, sess) {
    const q = lines.get(card.id);
    if (q && q.token !== sess.token) {
      clearInterval(q.timer);
      clearInterval(q.tick);
      lines.delete(card.id);
    } else if (q) {
      if (q.state === "admitted" && q.expMs > Date.now()) return q.ticket;
      return null;
    }
    join(card, sess);
    return null;
  }

  window.seckillQueue = { admission };
})();

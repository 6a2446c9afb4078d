// The sale page: lists every sale with live stock, counts down to upcoming
// sales on the client clock, logs a demo user in and buys, then follows the
// order until it is confirmed or failed. A confirmed order shows Pay now and
// Cancel with a countdown to its pay_by; paid, cancelled and expired orders
// are shown as such. It only uses the public JSON API.
"use strict";

(function () {
  const { api, store, formatPrice, formatDate, formatDuration, plural } = window.seckill;

  // Same rule as sale.ParseUserID on the server.
  const USER_RE = /^[A-Za-z0-9_.-]{1,64}$/;
  const SESSION_KEY = "seckill.session";
  const ORDERS_PREFIX = "seckill.orders.";

  const POLL_MS = 1000; // normal stock refresh
  const POLL_FAST_MS = 250; // around the start of a sale
  const POLL_HIDDEN_MS = 5000; // tab in the background
  const FAST_WINDOW_MS = 3000; // "around the start": this long before and after
  const TICK_MS = 200; // countdown redraw

  const $ = (sel, root) => (root || document).querySelector(sel);

  const els = {
    loginForm: $("#login-form"),
    userId: $("#user-id"),
    login: $("#login"),
    loginError: $("#login-error"),
    session: $("#session"),
    currentUser: $("#current-user"),
    avatar: $("#avatar"),
    logout: $("#logout"),
    conn: $("#conn"),
    announcer: $("#announcer"),
    sales: $("#sales"),
    items: $("#items"),
    loading: $("#loading"),
    empty: $("#empty"),
    template: $("#card-template"),
  };

  /** @type {{token:string,user_id:string,expires_at:string}|null} */
  let session = null;
  /** item id -> card state */
  const cards = new Map();

  // ---------------------------------------------------------------- helpers

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function setHidden(el, hidden) {
    if (el.hidden !== hidden) el.hidden = hidden;
  }

  function announce(text) {
    // Clearing first makes screen readers repeat an identical message.
    els.announcer.textContent = "";
    setTimeout(() => { els.announcer.textContent = text; }, 30);
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // ---------------------------------------------------------------- session

  function loadSession() {
    const s = store.get(SESSION_KEY);
    if (!s || typeof s.token !== "string" || typeof s.user_id !== "string") return null;
    if (s.expires_at && Date.parse(s.expires_at) <= Date.now()) {
      store.remove(SESSION_KEY);
      return null;
    }
    return s;
  }

  function showSession() {
    const loggedIn = session !== null;
    setHidden(els.loginForm, loggedIn);
    setHidden(els.session, !loggedIn);
    if (loggedIn) {
      setText(els.currentUser, session.user_id);
      setText(els.avatar, session.user_id.charAt(0).toUpperCase());
    }
  }

  function showLoginError(text) {
    setText(els.loginError, text);
    setHidden(els.loginError, !text);
    if (text) els.userId.setAttribute("aria-invalid", "true");
    else els.userId.removeAttribute("aria-invalid");
  }

  async function login(ev) {
    ev.preventDefault();
    const userId = els.userId.value.trim();
    if (!USER_RE.test(userId)) {
      showLoginError(userId === ""
        ? "Enter a user id."
        : "Use 1 to 64 characters: letters, digits, underscore, dot or hyphen.");
      els.userId.focus();
      return;
    }
    showLoginError("");
    els.login.disabled = true;
    els.login.setAttribute("aria-busy", "true");
    setText(els.login, "Logging in…");
    const r = await api("POST", "/api/v1/login", { body: { user_id: userId } });
    els.login.disabled = false;
    els.login.removeAttribute("aria-busy");
    setText(els.login, "Log in");
    if (!r.ok || !r.body || !r.body.token) {
      showLoginError(r.message || "Login failed.");
      els.userId.focus();
      return;
    }
    session = { token: r.body.token, user_id: r.body.user_id || userId, expires_at: r.body.expires_at || "" };
    store.set(SESSION_KEY, session);
    els.userId.value = "";
    showSession();
    for (const card of cards.values()) resetCardForUser(card);
    announce("Logged in as " + session.user_id + ".");
    els.sales.focus({ preventScroll: true });
  }

  function logout(reason) {
    session = null;
    store.remove(SESSION_KEY);
    for (const card of cards.values()) resetCardForUser(card);
    showSession();
    if (reason) {
      showLoginError(reason);
      announce(reason);
    } else {
      showLoginError("");
      announce("Logged out.");
    }
    els.userId.focus();
  }

  function sessionExpired() {
    if (session === null) return;
    logout("Your session has expired. Please log in again.");
  }

  // ---------------------------------------------------------------- orders kept per user

  function ordersKey() {
    return session ? ORDERS_PREFIX + session.user_id : null;
  }

  function saveOrder(card) {
    const key = ordersKey();
    if (!key) return;
    const all = store.get(key) || {};
    if (card.order) all[card.id] = card.order;
    else delete all[card.id];
    store.set(key, all);
  }

  function storedOrder(id) {
    const key = ordersKey();
    if (!key) return null;
    const all = store.get(key) || {};
    const o = all[id];
    return o && typeof o.id === "string" ? o : null;
  }

  // resetCardForUser drops what belonged to the previous user (order,
  // messages, cool-down) and restores the current user's order, if any.
  function resetCardForUser(card) {
    card.trackGen++;
    card.order = null;
    card.ticket = null;
    card.cooldownUntil = 0;
    card.cooldownText = "";
    card.busy = false;
    setMessage(card, "", "");
    const o = storedOrder(card.id);
    if (o) showOrder(card, o.id, o.status, o.reason);
    render(card, Date.now());
  }

  // ---------------------------------------------------------------- cards

  function createCard(item) {
    const li = els.template.content.firstElementChild.cloneNode(true);
    const id = String(item.id);
    li.dataset.itemId = id;
    li.dataset.testid = "item-" + id;
    const card = {
      id,
      el: li,
      item: null,
      startMs: 0,
      endMs: 0,
      phase: "",
      busy: false,
      cooldownUntil: 0,
      cooldownText: "",
      ticket: null,
      order: null,
      trackGen: 0,
      msgKind: "",
      r: {
        thumb: $(".thumb", li),
        letter: $(".thumb-letter", li),
        name: $(".name", li),
        badge: $(".status-badge", li),
        description: $(".description", li),
        price: $(".price", li),
        window: $(".window", li),
        stockLeft: $(".stock-left", li),
        barFill: $(".bar-fill", li),
        countdown: $(".countdown", li),
        buy: $(".buy", li),
        order: $(".order", li),
        orderId: $(".order-id", li),
        orderStatus: $(".order-status", li),
        deadline: $(".order-deadline", li),
        reason: $(".order-reason", li),
        orderActions: $(".order-actions", li),
        pay: $(".pay", li),
        cancel: $(".cancel", li),
        message: $(".message", li),
      },
    };
    const nameId = "item-" + id + "-name";
    card.r.name.id = nameId;
    li.setAttribute("aria-labelledby", nameId);
    card.r.message.id = "item-" + id + "-message";
    card.r.buy.setAttribute("aria-describedby", "item-" + id + "-stock " + card.r.message.id);
    $(".stock-text", li).id = "item-" + id + "-stock";
    card.r.buy.addEventListener("click", () => buy(card));
    card.r.pay.addEventListener("click", () => decide(card, "pay"));
    card.r.cancel.addEventListener("click", () => decide(card, "cancel"));
    const hue = (Number(item.id) * 67 + 20) % 360;
    li.style.setProperty("--hue", String(hue));
    return card;
  }

  function updateItem(card, item) {
    card.item = item;
    card.startMs = Date.parse(item.starts_at);
    card.endMs = Date.parse(item.ends_at);
    const r = card.r;
    setText(r.name, item.name);
    setText(r.letter, (item.name || "?").trim().charAt(0).toUpperCase() || "?");
    setText(r.description, item.description || "");
    setHidden(r.description, !item.description);
    setText(r.price, formatPrice(item.price_cents));
    const total = Math.max(0, Number(item.stock_total) || 0);
    // stock_left is null while the server cannot read the live stock (its
    // stock ledger is down): say so rather than show a guess or an error.
    const known = item.stock_left !== null && item.stock_left !== undefined;
    const left = known ? Math.max(0, Math.min(total, Number(item.stock_left) || 0)) : 0;
    setText(r.stockLeft, known ? left + " of " + total + " left" : "stock unavailable");
    r.stockLeft.dataset.known = known ? "true" : "false";
    const pct = known && total > 0 ? (left / total) * 100 : 0;
    r.barFill.style.width = pct.toFixed(1) + "%";
    r.barFill.dataset.level = pct > 50 ? "high" : pct > 20 ? "mid" : "low";
    if (!card.order) {
      const o = storedOrder(card.id);
      if (o) showOrder(card, o.id, o.status, o.reason, o.payBy);
    }
  }

  // phaseAt is the sale window on the client clock: the countdown and the
  // Buy button follow it without waiting for the next poll.
  function phaseAt(card, now) {
    if (now < card.startMs) return "upcoming";
    if (now >= card.endMs || (card.item && card.item.status === "ended")) return "ended";
    return "open";
  }

  function soldOut(card) {
    if (card.item.stock_left === null) return false; // unknown, not zero
    return card.item.status === "sold_out" || Number(card.item.stock_left) <= 0;
  }

  const BADGES = {
    upcoming: "Upcoming",
    open: "Live",
    sold_out: "Sold out",
    ended: "Ended",
  };

  function render(card, now) {
    if (!card.item) return;
    const r = card.r;
    const phase = phaseAt(card, now);
    const shown = phase === "open" && soldOut(card) ? "sold_out" : phase;
    card.phase = phase;
    if (card.el.dataset.status !== shown) card.el.dataset.status = shown;
    setText(r.badge, BADGES[shown]);
    r.badge.dataset.status = shown;

    if (phase === "upcoming") {
      setText(r.window, "Starts " + formatDate(card.startMs));
      setText(r.countdown, "Starts in " + formatDuration(card.startMs - now));
      r.countdown.dataset.remainingMs = String(Math.max(0, card.startMs - now));
      setHidden(r.countdown, false);
    } else {
      setText(r.window, (phase === "ended" ? "Ended " : "Ends ") + formatDate(card.endMs));
      setHidden(r.countdown, true);
      r.countdown.dataset.remainingMs = "0";
    }

    // Stock on the page is a hint (it may be a moment old, and units from
    // failed orders come back), so a sold-out sale keeps its button: the
    // server has the last word and answers "sold out".
    let label = "Buy now";
    let disabled = false;
    const orderStatus = card.order ? card.order.status : "";
    if (phase === "upcoming") {
      disabled = true;
    } else if (phase === "ended") {
      label = "Sale ended";
      disabled = true;
    } else if (card.busy) {
      label = "Buying…";
      disabled = true;
    } else if (orderStatus === "confirmed") {
      label = "Reserved · pay below";
      disabled = true;
    } else if (orderStatus === "paid") {
      label = "Purchased";
      disabled = true;
    } else if (orderStatus === "cancelled" || orderStatus === "expired") {
      // One order per buyer per item, lapsed or not: a buyer cannot hold
      // a unit, let it go and hold it again.
      label = orderStatus === "cancelled" ? "Order cancelled" : "Order expired";
      disabled = true;
    } else if (orderStatus === "queued") {
      label = "Order queued";
      disabled = true;
    } else if (orderStatus === "checking") {
      label = "Checking order…";
      disabled = true;
    } else if (card.cooldownUntil > now) {
      label = "Try again in " + Math.ceil((card.cooldownUntil - now) / 1000) + " s";
      disabled = true;
    }
    if (card.cooldownUntil && card.cooldownUntil <= now) {
      card.cooldownUntil = 0;
      if (card.cooldownText) setMessage(card, "You can try again now.", "info");
      card.cooldownText = "";
    }
    const soldOutTry = shown === "sold_out" && !disabled;
    if (soldOutTry) label = "Sold out · try again";
    r.buy.classList.toggle("is-soldout", soldOutTry);
    setText(r.buy, label);
    if (r.buy.disabled !== disabled) r.buy.disabled = disabled;
    if (card.busy) r.buy.setAttribute("aria-busy", "true");
    else r.buy.removeAttribute("aria-busy");

    setHidden(r.order, !card.order);
    if (card.order) {
      setText(r.orderId, card.order.id);
      if (r.orderId.title !== card.order.id) r.orderId.title = card.order.id;
      setText(r.orderStatus, card.order.status === "checking" ? "checking…" : card.order.status);
      r.orderStatus.dataset.status = card.order.status;
    }
    // A failed order says why, from the order's reason, for as long as it
    // is shown (the message line below is reused by later answers).
    const failed = !!card.order && card.order.status === "failed";
    setHidden(r.reason, !failed);
    if (failed) setText(r.reason, failedText(card.order.reason));
    const awaiting = !!card.order && card.order.status === "confirmed" && card.order.payBy > 0;
    setHidden(r.orderActions, !awaiting);
    setHidden(r.deadline, !awaiting);
    if (awaiting) {
      const left = card.order.payBy - now;
      r.deadline.dataset.remainingMs = String(Math.max(0, left));
      setText(r.deadline, left > 0 ? "Pay within " + formatDuration(left) : "Payment window closed…");
      const off = card.deciding || left <= 0;
      if (r.pay.disabled !== off) r.pay.disabled = off;
      if (r.cancel.disabled !== !!card.deciding) r.cancel.disabled = !!card.deciding;
      // The deadline passed on this clock: look once for the expiry.
      if (left <= 0 && !card.deadlineChecked) {
        card.deadlineChecked = true;
        track(card);
      }
    }
  }

  // decide pays for or cancels the card's confirmed order, then shows the
  // order as the server answers it.
  async function decide(card, action) {
    if (!session || !card.order || card.deciding) return;
    const sess = session;
    card.deciding = true;
    render(card, Date.now());
    setMessage(card, action === "pay" ? "Paying…" : "Cancelling…", "info");
    const r = await api("POST", "/api/v1/orders/" + encodeURIComponent(card.order.id) + "/" + action, { token: sess.token });
    card.deciding = false;
    if (session !== sess || !card.order) return;
    if (r.ok && r.body) {
      applyOrder(card, r.body);
    } else if (r.status === 401) {
      sessionExpired();
      return;
    } else if (r.code === "payment_window_closed" || r.code === "already_paid" || r.code === "order_pending") {
      setMessage(card, r.message, "warn");
      track(card);
    } else {
      setMessage(card, r.message || "Something went wrong; try again.", "error");
    }
    render(card, Date.now());
  }

  // applyOrder takes an order as the API shows it and says what it means.
  function applyOrder(card, body) {
    const st = body.status;
    const prev = card.order.status;
    card.order.status = st;
    card.order.reason = body.reason || "";
    card.order.payBy = body.pay_by ? Date.parse(body.pay_by) : 0;
    saveOrder(card);
    if (st === "confirmed") {
      if (prev !== "confirmed") setMessage(card, "Confirmed! Pay before the countdown ends, or the unit goes back on sale.", "success");
    } else if (st === "paid") {
      setMessage(card, "Paid. The item is yours.", "success");
    } else if (st === "cancelled") {
      setMessage(card, "Order cancelled. Its unit is back on sale.", "info");
      refreshSoon();
    } else if (st === "expired") {
      setMessage(card, "The payment window closed: the order expired and its unit is back on sale.", "warn");
      refreshSoon();
    } else if (st === "failed") {
      setMessage(card, failedText(card.order.reason), "error");
      refreshSoon();
    }
  }

  function setMessage(card, text, kind) {
    setText(card.r.message, text);
    card.r.message.dataset.kind = kind || "";
  }

  function applyItems(items) {
    window.seckill.syncList(els.items, cards, items, createCard,
      (card, item) => { updateItem(card, item); render(card, Date.now()); },
      (card) => { card.trackGen++; });
    setHidden(els.loading, true);
    setHidden(els.empty, items.length > 0);
    els.sales.setAttribute("aria-busy", "false");
  }

  // ---------------------------------------------------------------- buying

  function startCooldown(card, ms, text) {
    card.cooldownUntil = Date.now() + ms;
    card.cooldownText = text;
    const secs = Math.max(1, Math.ceil(ms / 1000));
    setMessage(card, text + " Try again in " + secs + " " + plural(secs, "second", "seconds") + ".", "warn");
  }

  // ---------------------------------------------------------------- fair sales

  // A protected item (protection "ticket" or "pow") is bought with a
  // single-use ticket, fetched just before the purchase; for "pow" the
  // ticket costs a proof of work, solved in a Web Worker so the page stays
  // responsive (docs/FAIRNESS.md). A ticket the purchase did not use up (the
  // answer was 429 or 503) is kept for the retry while it is valid.
  function solvePow(card, challenge, difficulty) {
    return new Promise((resolve, reject) => {
      let worker;
      try {
        worker = new Worker("/static/pow-worker.js");
      } catch (e) {
        reject(new Error("This browser cannot run the anti-bot check (no Web Workers)."));
        return;
      }
      const started = Date.now();
      worker.onmessage = (ev) => {
        const m = ev.data || {};
        if (m.type === "progress") {
          card.el.dataset.powUpdates = String(Number(card.el.dataset.powUpdates || 0) + 1);
          // The expected work is 2^difficulty hashes; past it, keep the bar
          // just short of full rather than pretend to know the end.
          const pct = Math.min(99, Math.floor((m.hashes / m.expected) * 100));
          card.el.dataset.powProgress = String(pct);
          setMessage(card, "Checking you are not a bot… " + pct + "%", "info");
        } else if (m.type === "done") {
          worker.terminate();
          card.el.dataset.powProgress = "100";
          card.el.dataset.powHashes = String(m.hashes);
          card.el.dataset.powMs = String(Date.now() - started);
          resolve(m.nonce);
        } else {
          worker.terminate();
          reject(new Error(m.message || "The anti-bot check failed."));
        }
      };
      worker.onerror = () => {
        worker.terminate();
        reject(new Error("The anti-bot check failed to run."));
      };
      worker.postMessage({ challenge, difficulty });
    });
  }

  // ticketFor returns {ticket} or {error: r} for a failed API answer.
  async function ticketFor(card, sess) {
    if (card.ticket && card.ticket.expMs - Date.now() > 2000) return { ticket: card.ticket.ticket };
    const base = "/api/v1/items/" + encodeURIComponent(card.id);
    let body;
    if (card.item.protection === "pow") {
      setMessage(card, "Checking you are not a bot…", "info");
      const ch = await api("GET", base + "/challenge", { token: sess.token });
      if (!ch.ok) return { error: ch };
      let nonce;
      try {
        nonce = await solvePow(card, ch.body.challenge, ch.body.difficulty);
      } catch (e) {
        return { error: { code: "pow", message: e.message } };
      }
      body = { challenge: ch.body.challenge, nonce };
    }
    const r = await api("POST", base + "/ticket", { token: sess.token, body });
    if (!r.ok) return { error: r };
    card.ticket = { ticket: r.body.ticket, expMs: Date.parse(r.body.expires_at) };
    return { ticket: r.body.ticket };
  }

  async function buy(card) {
    if (card.busy) return;
    if (session && session.expires_at && Date.parse(session.expires_at) <= Date.now()) {
      sessionExpired();
      return;
    }
    if (!session) {
      setMessage(card, "Log in first: enter a user id at the top of the page.", "warn");
      showLoginError("");
      els.userId.focus();
      return;
    }
    const sess = session;
    card.busy = true;
    render(card, Date.now());
    let opts = { token: sess.token };
    // A queue item is bought with its waiting room's admission (queue.js).
    if (card.item && card.item.protection === "queue" && window.seckillQueue) {
      const adm = window.seckillQueue.admission(card, sess);
      if (!adm) { card.busy = false; render(card, Date.now()); return; }
      opts = { token: sess.token, body: { ticket: adm } };
    }
    const protectedSale = card.item && (card.item.protection === "ticket" || card.item.protection === "pow");
    if (protectedSale) {
      const t = await ticketFor(card, sess);
      if (t.error) {
        card.busy = false;
        if (session === sess) {
          handleBuyError(card, t.error);
          // No purchase was sent: only the ticket request failed.
          if (t.error.code === "network") setMessage(card, t.error.message + " Your order was not placed; try again.", "error");
        }
        render(card, Date.now());
        return;
      }
      opts = { token: sess.token, body: { ticket: t.ticket } };
    }
    setMessage(card, "Placing your order…", "info");
    const sentAt = Date.now();
    const r = await api("POST", "/api/v1/items/" + encodeURIComponent(card.id) + "/purchase", opts);
    card.busy = false;
    // Only an answer from before the ledger (429, 503, a network failure
    // that may not have reached it is treated as used) leaves the ticket
    // unused; anything else used it or makes it useless.
    if (!(r.status === 429 || r.status === 503)) card.ticket = null;
    if (session !== sess) {
      render(card, Date.now());
      return;
    }
    if (r.status === 202 && r.body && r.body.order_id) {
      showOrder(card, r.body.order_id, r.body.status || "queued", "");
      setMessage(card, "Order placed. Waiting for confirmation…", "info");
      refreshSoon();
    } else {
      handleBuyError(card, r);
      // An answer lost on the way back (a network error), or one the shop
      // itself did not get (504 outcome_unknown: the reservation was sent
      // and no answer came back), may hide an order: follow the documented
      // next step and ask the orders route, a few times, since a sent
      // reservation may land a moment later. Once the sale sells out a
      // retry hears sold_out before the shop checks whether this buyer
      // already holds one: ask then too.
      const unknown = r.code === "network" || r.status === 504;
      if ((unknown || r.code === "sold_out") && !card.order) {
        const tried = { id: (r.body && r.body.order_id) || "", since: sentAt };
        const found = await findMyOrder(card, sess, tried, unknown ? 4 : 1);
        const lead = r.code === "network" ? r.message + " " : "";
        if (found === "none" && unknown) {
          setMessage(card, lead + "No order was placed for you. Press Buy to try again.", "error");
        } else if (found === "unknown" && unknown) {
          setMessage(card, lead + "We could not tell whether your order was placed: press Buy again, and the shop will say if you already have one.", "error");
        }
      }
    }
    render(card, Date.now());
  }

  // findMyOrder asks the shop for the user's orders for the card's item
  // (GET /api/v1/items/{id}/orders) and shows the live one (queued,
  // confirmed or paid) if there is one, or else the failed order this
  // attempt made (tried.id, or any failed since tried.since), with its
  // reason. It asks up to tries times, a little longer apart each time,
  // while it finds nothing. It answers "found", "failed", "none", or
  // "unknown" when the shop could not be asked.
  async function findMyOrder(card, sess, tried, tries) {
    tried = tried || { id: "", since: 0 };
    let result = "unknown";
    for (let i = 0; i < (tries || 1); i++) {
      if (i > 0) await sleep(500 * 2 ** (i - 1));
      if (session !== sess) return "unknown";
      const r = await api("GET", "/api/v1/items/" + encodeURIComponent(card.id) + "/orders", { token: sess.token });
      if (session !== sess) return "unknown";
      if (!r.ok || !r.body || !Array.isArray(r.body.orders)) {
        result = "unknown";
        continue;
      }
      const live = r.body.orders.find((o) => ["queued", "confirmed", "paid"].includes(o.status));
      if (live) {
        showOrder(card, live.order_id, live.status, live.reason || "");
        setMessage(card, "You already hold an order for this item.", "info");
        return "found";
      }
      const failed = r.body.orders.find((o) => o.status === "failed" &&
        (o.order_id === tried.id || (!tried.id && Date.parse(o.created_at) >= tried.since - 5000)));
      if (failed) {
        showOrder(card, failed.order_id, "failed", failed.reason || "");
        return "failed";
      }
      result = "none";
    }
    return result;
  }

  function handleBuyError(card, r) {
    switch (r.code) {
      case "sold_out":
        setMessage(card, "Sold out. Every unit has been taken.", "error");
        refreshSoon();
        break;
      case "already_purchased":
        if (r.body && r.body.order_id) {
          showOrder(card, r.body.order_id, "checking", "");
          setMessage(card, "You already have an order for this item. Checking its status…", "info");
        } else {
          setMessage(card, "You already have an order for this item.", "info");
        }
        break;
      case "rate_limited":
        startCooldown(card, r.retryAfter, "Too many attempts.");
        break;
      case "blocked":
        setMessage(card, "This account may not buy: it has been blocked by the shop.", "error");
        break;
      case "ticket_required":
      case "invalid_ticket":
      case "invalid_challenge":
        card.ticket = null;
        setMessage(card, "Your purchase pass expired or was already used. Press Buy again for a fresh one.", "warn");
        break;
      case "pow":
        setMessage(card, r.message, "error");
        break;
      case "unavailable":
        startCooldown(card, r.retryAfter, "The shop is very busy right now.");
        break;
      case "not_started":
        setMessage(card, "This sale has not started yet.", "warn");
        refreshSoon();
        break;
      case "ended":
        setMessage(card, "This sale has ended.", "error");
        refreshSoon();
        break;
      case "unauthorized":
        sessionExpired();
        setMessage(card, "Please log in again to buy.", "warn");
        break;
      case "not_found":
        setMessage(card, "This sale no longer exists.", "error");
        refreshSoon();
        break;
      case "network":
        setMessage(card, r.message + " Checking whether your order went through…", "warn");
        break;
      case "outcome_unknown":
      case "http_504":
        setMessage(card, "The shop sent your order on but did not hear back in time. Checking whether it went through…", "warn");
        break;
      default:
        setMessage(card, r.message || "Something went wrong. Try again.", "error");
    }
  }

  function showOrder(card, orderId, status, reason, payBy) {
    card.order = { id: orderId, status: status || "queued", reason: reason || "", payBy: payBy || 0 };
    card.deadlineChecked = false;
    saveOrder(card);
    // A confirmed order from an earlier visit may have been paid, cancelled
    // or expired since: look it up again.
    if (["queued", "checking", "confirmed"].includes(card.order.status)) track(card);
    else if (card.order.status === "failed") setMessage(card, failedText(card.order.reason), "error");
    render(card, Date.now());
  }

  // REASONS words the failure codes the shop gives (orders' reason) for
  // buyers; a reason that is not a code is already a sentence.
  const REASONS = {
    ledger_rolled_back: "the shop's stock records lost your reservation (a failover), so no unit was kept for you. Nothing was charged",
  };

  function failedText(reason) {
    const text = REASONS[reason] || reason;
    return "Order failed" + (text ? ": " + text + "." : ".");
  }

  // track polls the order until it is confirmed or decided (paid,
  // cancelled, expired, failed); a confirmed order past its pay_by is polled
  // until it shows its fate. A newer track of the same card, a logout or a
  // new login stops it.
  async function track(card) {
    const gen = ++card.trackGen;
    const sess = session;
    const started = Date.now();
    let delay = 200;
    let misses = 0;
    let slowNoted = false;
    const live = () => gen === card.trackGen && session === sess && sess !== null && card.order;
    while (live()) {
      const r = await api("GET", "/api/v1/orders/" + encodeURIComponent(card.order.id), { token: sess.token });
      if (!live()) return;
      let wait = delay;
      if (r.ok && r.body) {
        misses = 0;
        const st = r.body.status;
        const was = card.order.status;
        applyOrder(card, r.body);
        if (st === "confirmed" && Date.now() < card.order.payBy) {
          if (was !== "confirmed") refreshSoon();
          render(card, Date.now());
          return;
        }
        if (st !== "queued" && st !== "confirmed") {
          render(card, Date.now());
          return;
        }
        if (!slowNoted && Date.now() - started > 10000) {
          slowNoted = true;
          setMessage(card, "Still queued: orders are confirmed in turn. This page updates by itself.", "info");
        }
      } else if (r.status === 401) {
        sessionExpired();
        return;
      } else if (r.status === 404) {
        if (++misses >= 5) {
          setMessage(card, "We could not find this order.", "error");
          card.order = null;
          saveOrder(card);
          render(card, Date.now());
          return;
        }
      } else if (r.retryAfter) {
        wait = Math.max(wait, r.retryAfter);
      } else if (r.code === "network") {
        wait = Math.max(wait, 2000);
      }
      render(card, Date.now());
      await sleep(wait);
      delay = Math.min(Math.round(delay * 1.5), 2000);
    }
  }

  // ---------------------------------------------------------------- polling

  let pollTimer = 0;
  let inflight = false;
  let again = false;
  let failures = 0;

  function nextDelay(minMs) {
    if (document.hidden) return Math.max(POLL_HIDDEN_MS, minMs);
    if (failures > 0) return Math.max(Math.min(1000 * 2 ** (failures - 1), 10000), minMs);
    const now = Date.now();
    for (const card of cards.values()) {
      if (Math.abs(card.startMs - now) <= FAST_WINDOW_MS) return Math.max(POLL_FAST_MS, minMs);
    }
    return Math.max(POLL_MS, minMs);
  }

  async function refreshItems() {
    clearTimeout(pollTimer);
    if (inflight) {
      again = true;
      return;
    }
    inflight = true;
    const r = await api("GET", "/api/v1/items", { timeoutMs: 5000 });
    inflight = false;
    if (r.ok && r.body && Array.isArray(r.body.items)) {
      failures = 0;
      setHidden(els.conn, true);
      applyItems(r.body.items);
    } else {
      failures++;
      setText(els.conn, (r.code === "network" ? "Cannot reach the shop." : r.message) +
        " Retrying… Stock shown may be out of date.");
      setHidden(els.conn, false);
      if (cards.size === 0) setText(els.loading, "Waiting for the shop…");
    }
    if (again) {
      again = false;
      pollTimer = setTimeout(refreshItems, 0);
      return;
    }
    pollTimer = setTimeout(refreshItems, nextDelay(r.retryAfter || 0));
  }

  function refreshSoon() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(refreshItems, 0);
  }

  function tick() {
    const now = Date.now();
    for (const card of cards.values()) {
      const before = card.phase;
      render(card, now);
      if (before === "upcoming" && card.phase === "open") {
        announce(card.item.name + " is on sale now.");
        refreshSoon();
      } else if (before === "open" && card.phase === "ended") {
        refreshSoon();
      }
    }
  }

  // ---------------------------------------------------------------- start

  els.loginForm.addEventListener("submit", login);
  els.userId.addEventListener("input", () => {
    if (!els.loginError.hidden) showLoginError("");
  });
  els.logout.addEventListener("click", () => logout(""));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refreshSoon();
  });

  session = loadSession();
  showSession();
  setInterval(tick, TICK_MS);
  refreshItems();
})();

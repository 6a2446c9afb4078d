// The admin page: keeps the admin token in sessionStorage, creates sales,
// restocks (one Idempotency-Key per click), edits item data, and polls each
// item's stock accounting every second.
"use strict";

(function () {
  const { api, store, formatPrice, formatDate, randomKey } = window.seckill;

  const TOKEN_KEY = "seckill.admin-token";
  const POLL_MS = 1000;

  const $ = (sel, root) => (root || document).querySelector(sel);

  const els = {
    tokenForm: $("#token-form"),
    token: $("#admin-token"),
    forget: $("#forget-token"),
    tokenStatus: $("#token-status"),
    createForm: $("#create-form"),
    create: $("#create"),
    createStatus: $("#create-status"),
    name: $("#new-name"),
    description: $("#new-description"),
    price: $("#new-price"),
    stock: $("#new-stock"),
    starts: $("#new-starts"),
    ends: $("#new-ends"),
    rate: $("#new-rate"),
    protection: $("#new-protection"),
    blockForm: $("#block-form"),
    blockUser: $("#block-user"),
    blockReason: $("#block-reason"),
    blockStatus: $("#block-status"),
    blocklist: $("#blocklist"),
    blocklistEmpty: $("#blocklist-empty"),
    list: $("#admin-items"),
    empty: $("#admin-empty"),
    statsNote: $("#stats-note"),
    conn: $("#conn"),
    announcer: $("#announcer"),
    template: $("#admin-item-template"),
  };

  let token = store.get(TOKEN_KEY) || "";
  let tokenRejected = false;
  /** item id -> row state */
  const rows = new Map();

  function setText(el, text) {
    if (el.textContent !== text) el.textContent = text;
  }

  function setStatus(el, text, kind) {
    setText(el, text);
    el.dataset.kind = kind || "";
  }

  function announce(text) {
    els.announcer.textContent = "";
    setTimeout(() => { els.announcer.textContent = text; }, 30);
  }

  // ------------------------------------------------------------ time inputs

  // toLocalInput renders an instant as a datetime-local value in the
  // browser's time zone, to the minute.
  function toLocalInput(ms) {
    const d = new Date(ms);
    return new Date(ms - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }

  // fromLocalInput turns a datetime-local value (local time) into RFC 3339
  // UTC, as the API expects; "" for an empty or invalid value.
  function fromLocalInput(value) {
    if (!value) return "";
    const ms = new Date(value).getTime();
    if (Number.isNaN(ms)) return "";
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  function dollarsToCents(value) {
    if (value === "" || value === null) return NaN;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) return NaN;
    return Math.round(n * 100);
  }

  function wholeNumber(value) {
    if (value === "" || value === null) return NaN;
    const n = Number(value);
    return Number.isInteger(n) ? n : NaN;
  }

  // ------------------------------------------------------------ token

  function showTokenState() {
    if (!token) {
      setStatus(els.tokenStatus, "No token set.", "");
      els.statsNote.hidden = false;
    } else if (tokenRejected) {
      setStatus(els.tokenStatus, "The server rejected this token. Check it and enter it again.", "error");
      els.statsNote.hidden = false;
    } else {
      setStatus(els.tokenStatus, "Token in use for this browser tab.", "success");
      els.statsNote.hidden = true;
    }
  }

  function useToken(ev) {
    ev.preventDefault();
    const t = els.token.value.trim();
    if (!t) {
      setStatus(els.tokenStatus, "Enter the admin token.", "error");
      els.token.setAttribute("aria-invalid", "true");
      els.token.focus();
      return;
    }
    els.token.removeAttribute("aria-invalid");
    token = t;
    tokenRejected = false;
    store.set(TOKEN_KEY, token);
    els.token.value = "";
    showTokenState();
    setStatus(els.tokenStatus, "Token saved; checking it…", "info");
    refresh();
  }

  function forgetToken() {
    token = "";
    tokenRejected = false;
    store.remove(TOKEN_KEY);
    for (const row of rows.values()) clearStats(row);
    showTokenState();
    announce("Admin token forgotten.");
    els.token.focus();
  }

  function rejected() {
    tokenRejected = true;
    showTokenState();
  }

  function needToken(statusEl) {
    if (token && !tokenRejected) return false;
    setStatus(statusEl, tokenRejected ? "The admin token was rejected; enter it again above." : "Enter the admin token above first.", "error");
    els.token.focus();
    return true;
  }

  // ------------------------------------------------------------ create

  function defaultWindow() {
    const now = Date.now();
    els.starts.value = toLocalInput(now + 2 * 60000);
    els.ends.value = toLocalInput(now + 24 * 3600000);
  }

  async function createSale(ev) {
    ev.preventDefault();
    if (needToken(els.createStatus)) return;
    const name = els.name.value.trim();
    const price = dollarsToCents(els.price.value);
    const stock = wholeNumber(els.stock.value);
    const startsAt = fromLocalInput(els.starts.value);
    const endsAt = fromLocalInput(els.ends.value);
    const rate = els.rate.value === "" ? 0 : wholeNumber(els.rate.value);
    const problems = [];
    const bad = (el, text) => { problems.push(text); el.setAttribute("aria-invalid", "true"); };
    for (const el of [els.name, els.price, els.stock, els.starts, els.ends, els.rate]) el.removeAttribute("aria-invalid");
    if (!name) bad(els.name, "a name");
    if (Number.isNaN(price)) bad(els.price, "a price of 0 or more");
    if (Number.isNaN(stock) || stock < 1 || stock > 10000000) bad(els.stock, "a stock of 1 to 10,000,000 units");
    if (!startsAt) bad(els.starts, "a start time");
    if (!endsAt) bad(els.ends, "an end time");
    if (startsAt && endsAt && Date.parse(endsAt) <= Date.parse(startsAt)) bad(els.ends, "an end after the start");
    if (Number.isNaN(rate) || rate < 0) bad(els.rate, "a purchase rate of 0 or more (or leave it empty)");
    if (problems.length) {
      setStatus(els.createStatus, "Please enter " + problems.join(", ") + ".", "error");
      const first = els.createForm.querySelector("[aria-invalid='true']");
      if (first) first.focus();
      return;
    }
    const body = {
      name, description: els.description.value.trim(), price_cents: price, stock,
      starts_at: startsAt, ends_at: endsAt,
    };
    if (rate > 0) body.purchase_rate = rate;
    body.protection = els.protection.value;
    els.create.disabled = true;
    setStatus(els.createStatus, "Creating…", "info");
    const r = await api("POST", "/api/v1/admin/items", { token, body });
    els.create.disabled = false;
    if (r.status === 401) {
      rejected();
      setStatus(els.createStatus, "The admin token was rejected.", "error");
      return;
    }
    if (!r.ok) {
      setStatus(els.createStatus, "Not created: " + r.message, "error");
      return;
    }
    setStatus(els.createStatus, "Created sale #" + r.body.id + " (" + r.body.name + ").", "success");
    els.name.value = "";
    els.description.value = "";
    refresh();
  }

  // ------------------------------------------------------------ item rows

  function createRow(item) {
    const li = els.template.content.firstElementChild.cloneNode(true);
    const id = String(item.id);
    li.dataset.itemId = id;
    li.setAttribute("aria-labelledby", "admin-item-" + id + "-name");
    const q = (s) => $(s, li);
    const row = {
      id, el: li, item: null, stats: null,
      r: {
        name: q(".name"), ref: q(".item-ref"), price: q(".price"), window: q(".window"), badge: q(".status-badge"),
        total: q(".s-total"), leftRedis: q(".s-left-redis"), leftDB: q(".s-left-db"),
        pending: q(".s-pending"), confirmed: q(".s-confirmed"), failed: q(".s-failed"),
        paid: q(".s-paid"), cancelled: q(".s-cancelled"), expired: q(".s-expired"),
        consistency: q(".consistency"), restockForm: q(".restock"), restockAdd: q(".restock-add"),
        restockBtn: q(".restock-btn"), details: q("details.edit"), editForm: q(".edit-form"),
        saveBtn: q(".save-btn"), status: q(".item-status"),
        eName: q(".e-name"), ePrice: q(".e-price"), eRate: q(".e-rate"), eDescription: q(".e-description"),
        eStarts: q(".e-starts"), eEnds: q(".e-ends"), eProtection: q(".e-protection"),
      },
      editBase: null,
    };
    row.r.name.id = "admin-item-" + id + "-name";
    // Give each label of this row's forms a unique target.
    const pair = (labelSel, input, suffix) => {
      input.id = "admin-item-" + id + "-" + suffix;
      q(labelSel).htmlFor = input.id;
    };
    pair(".restock-label", row.r.restockAdd, "restock");
    pair(".l-name", row.r.eName, "name-edit");
    pair(".l-price", row.r.ePrice, "price-edit");
    pair(".l-rate", row.r.eRate, "rate-edit");
    pair(".l-protection", row.r.eProtection, "protection-edit");
    pair(".l-description", row.r.eDescription, "description-edit");
    pair(".l-starts", row.r.eStarts, "starts-edit");
    pair(".l-ends", row.r.eEnds, "ends-edit");
    row.r.restockForm.addEventListener("submit", (ev) => { ev.preventDefault(); restock(row); });
    row.r.editForm.addEventListener("submit", (ev) => { ev.preventDefault(); saveEdit(row); });
    row.r.details.addEventListener("toggle", () => { if (row.r.details.open) fillEdit(row); });
    return row;
  }

  const STATUS_LABELS = { upcoming: "Upcoming", active: "Live", sold_out: "Sold out", ended: "Ended" };
  const BADGE_STATE = { upcoming: "upcoming", active: "open", sold_out: "sold_out", ended: "ended" };

  function updateRow(row, item) {
    row.item = item;
    const r = row.r;
    setText(r.name, item.name);
    setText(r.ref, "#" + item.id);
    setText(r.price, formatPrice(item.price_cents));
    setText(r.window, formatDate(Date.parse(item.starts_at)) + " → " + formatDate(Date.parse(item.ends_at)));
    setText(r.badge, STATUS_LABELS[item.status] || item.status);
    r.badge.dataset.status = BADGE_STATE[item.status] || "";
  }

  function clearStats(row) {
    const r = row.r;
    for (const el of [r.total, r.leftRedis, r.leftDB, r.pending, r.confirmed, r.paid, r.cancelled, r.expired, r.failed]) setText(el, "–");
    setText(r.consistency, "Consistency: unknown");
    r.consistency.dataset.state = "unknown";
  }

  function updateStats(row, s) {
    const r = row.r;
    setText(r.total, String(s.stock_total));
    setText(r.leftRedis, String(s.stock_left_redis));
    setText(r.leftDB, String(s.stock_left_db));
    setText(r.pending, String(s.orders_pending));
    setText(r.confirmed, String(s.orders_confirmed));
    setText(r.paid, String(s.orders_paid));
    setText(r.cancelled, String(s.orders_cancelled));
    setText(r.expired, String(s.orders_expired));
    setText(r.failed, String(s.orders_failed));
    let state = s.consistent ? "consistent" : "inconsistent";
    let text = s.consistent ? "✓ Consistent" : "✗ Inconsistent";
    // An order between its database commit and the ledger's settle step
    // makes the books disagree for a moment; only a lasting mismatch counts.
    if (!s.consistent) {
      row.badPolls = (row.badPolls || 0) + 1;
      if (row.badPolls < 3 && s.orders_pending > 0) {
        state = "settling";
        text = "… Settling (" + s.orders_pending + " pending)";
      }
    } else {
      row.badPolls = 0;
    }
    setText(r.consistency, text);
    r.consistency.dataset.state = state;
    r.consistency.title = "Redis total = database total; Redis total = left in Redis + pending + confirmed + paid; " +
      "left in database = total − confirmed − paid (cancelled and expired units are back in both)";
  }

  async function restock(row) {
    const r = row.r;
    if (needToken(r.status)) return;
    const add = wholeNumber(r.restockAdd.value);
    if (Number.isNaN(add) || add < 1) {
      r.restockAdd.setAttribute("aria-invalid", "true");
      setStatus(r.status, "Enter a whole number of units, 1 or more.", "error");
      r.restockAdd.focus();
      return;
    }
    r.restockAdd.removeAttribute("aria-invalid");
    // One key per click: a retry of this click after a network error is
    // applied at most once, while a second click is a second restock.
    const key = randomKey();
    r.restockBtn.disabled = true;
    setStatus(r.status, "Restocking…", "info");
    let res = await api("POST", "/api/v1/admin/items/" + row.id + "/restock", {
      token, body: { add }, headers: { "Idempotency-Key": key },
    });
    if (res.code === "network") {
      res = await api("POST", "/api/v1/admin/items/" + row.id + "/restock", {
        token, body: { add }, headers: { "Idempotency-Key": key },
      });
    }
    r.restockBtn.disabled = false;
    if (res.status === 401) {
      rejected();
      setStatus(r.status, "The admin token was rejected.", "error");
      return;
    }
    if (!res.ok) {
      setStatus(r.status, "Restock failed: " + res.message, "error");
      return;
    }
    setStatus(r.status, "Added " + add + " units: " + res.body.stock_left + " of " + res.body.stock_total + " left.", "success");
    updateRow(row, res.body);
    refresh();
  }

  function fillEdit(row) {
    const it = row.item;
    const r = row.r;
    row.editBase = {
      name: it.name,
      description: it.description || "",
      price: (it.price_cents / 100).toFixed(2),
      rate: String(it.purchase_rate || 0),
      protection: it.protection || "none",
      starts: toLocalInput(Date.parse(it.starts_at)),
      ends: toLocalInput(Date.parse(it.ends_at)),
    };
    r.eName.value = row.editBase.name;
    r.eDescription.value = row.editBase.description;
    r.ePrice.value = row.editBase.price;
    r.eRate.value = row.editBase.rate;
    r.eProtection.value = row.editBase.protection;
    r.eStarts.value = row.editBase.starts;
    r.eEnds.value = row.editBase.ends;
  }

  async function saveEdit(row) {
    const r = row.r;
    if (needToken(r.status)) return;
    if (!row.editBase) fillEdit(row);
    const base = row.editBase;
    // Send only what changed, so an untouched window keeps its seconds.
    const patch = {};
    if (r.eName.value.trim() !== base.name) patch.name = r.eName.value.trim();
    if (r.eDescription.value.trim() !== base.description) patch.description = r.eDescription.value.trim();
    if (r.ePrice.value !== base.price) {
      const c = dollarsToCents(r.ePrice.value);
      if (Number.isNaN(c)) return editError(row, r.ePrice, "Enter a price of 0 or more.");
      patch.price_cents = c;
    }
    if (r.eRate.value !== base.rate) {
      const n = r.eRate.value === "" ? 0 : wholeNumber(r.eRate.value);
      if (Number.isNaN(n) || n < 0) return editError(row, r.eRate, "Enter a purchase rate of 0 or more.");
      patch.purchase_rate = n;
    }
    if (r.eProtection.value !== base.protection) patch.protection = r.eProtection.value;
    if (r.eStarts.value !== base.starts) {
      const v = fromLocalInput(r.eStarts.value);
      if (!v) return editError(row, r.eStarts, "Enter a start time.");
      patch.starts_at = v;
    }
    if (r.eEnds.value !== base.ends) {
      const v = fromLocalInput(r.eEnds.value);
      if (!v) return editError(row, r.eEnds, "Enter an end time.");
      patch.ends_at = v;
    }
    if (patch.name === "") return editError(row, r.eName, "The name cannot be empty.");
    if (Object.keys(patch).length === 0) {
      setStatus(r.status, "Nothing changed.", "info");
      return;
    }
    r.saveBtn.disabled = true;
    setStatus(r.status, "Saving…", "info");
    const res = await api("PATCH", "/api/v1/admin/items/" + row.id, { token, body: patch });
    r.saveBtn.disabled = false;
    if (res.status === 401) {
      rejected();
      setStatus(r.status, "The admin token was rejected.", "error");
      return;
    }
    if (!res.ok) {
      setStatus(r.status, "Not saved: " + res.message, "error");
      return;
    }
    updateRow(row, res.body);
    fillEdit(row);
    setStatus(r.status, "Saved. Caches on every instance are being refreshed.", "success");
  }

  function editError(row, input, text) {
    input.setAttribute("aria-invalid", "true");
    input.addEventListener("input", () => input.removeAttribute("aria-invalid"), { once: true });
    setStatus(row.r.status, text, "error");
    input.focus();
  }

  // ------------------------------------------------------------ polling

  let timer = 0;
  let busy = false;
  let blockPolls = 0;

  async function refresh() {
    clearTimeout(timer);
    if (busy) {
      timer = setTimeout(refresh, 100);
      return;
    }
    busy = true;
    let wait = POLL_MS;
    const r = await api("GET", "/api/v1/items", { timeoutMs: 5000 });
    if (r.ok && r.body && Array.isArray(r.body.items)) {
      els.conn.hidden = true;
      applyItems(r.body.items);
      if (token && !tokenRejected) await pollStats();
      // The blocklist changes rarely: every fifth poll is enough.
      if (token && !tokenRejected && (blockPolls++ % 5 === 0)) await loadBlocklist();
    } else {
      setText(els.conn, (r.code === "network" ? "Cannot reach the server." : r.message) + " Retrying…");
      els.conn.hidden = false;
      wait = Math.max(wait, r.retryAfter || 2000);
    }
    busy = false;
    timer = setTimeout(refresh, document.hidden ? 5000 : wait);
  }

  function applyItems(items) {
    window.seckill.syncList(els.list, rows, items, createRow, updateRow);
    els.empty.hidden = items.length > 0;
  }

  async function pollStats() {
    const list = Array.from(rows.values());
    const results = await Promise.all(list.map((row) =>
      api("GET", "/api/v1/admin/items/" + row.id + "/stats", { token, timeoutMs: 4000 })));
    let okCount = 0;
    results.forEach((res, i) => {
      if (res.ok && res.body) {
        okCount++;
        updateStats(list[i], res.body);
      } else if (res.status === 401) {
        rejected();
      }
    });
    if (els.tokenStatus.dataset.kind === "info" && (okCount > 0 || list.length === 0)) {
      showTokenState();
      if (list.length === 0) setStatus(els.tokenStatus, "Token saved. It is checked once there is a sale.", "info");
    }
    if (tokenRejected) for (const row of rows.values()) clearStats(row);
  }

  // ------------------------------------------------------------ blocklist

  function renderBlocklist(list) {
    els.blocklist.replaceChildren(...list.map((b) => {
      const li = document.createElement("li");
      li.className = "blocked";
      li.dataset.userId = b.user_id;
      const who = document.createElement("span");
      who.className = "blocked-user";
      who.textContent = b.user_id + (b.reason ? " — " + b.reason : "");
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "btn btn-ghost unblock";
      btn.textContent = "Unblock";
      btn.setAttribute("aria-label", "Unblock " + b.user_id);
      btn.addEventListener("click", () => unblock(b.user_id));
      li.append(who, btn);
      return li;
    }));
    els.blocklistEmpty.hidden = list.length > 0;
  }

  async function loadBlocklist() {
    if (!token || tokenRejected) return;
    const r = await api("GET", "/api/v1/admin/blocklist", { token, timeoutMs: 4000 });
    if (r.status === 401) rejected();
    else if (r.ok && r.body && Array.isArray(r.body.blocked)) renderBlocklist(r.body.blocked);
  }

  async function block(ev) {
    ev.preventDefault();
    if (needToken(els.blockStatus)) return;
    const user = els.blockUser.value.trim();
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(user)) {
      els.blockUser.setAttribute("aria-invalid", "true");
      setStatus(els.blockStatus, "Enter a user id: 1 to 64 of A-Z a-z 0-9 _ . -", "error");
      els.blockUser.focus();
      return;
    }
    els.blockUser.removeAttribute("aria-invalid");
    const reason = els.blockReason.value.trim();
    const r = await api("POST", "/api/v1/admin/blocklist/" + encodeURIComponent(user), { token, body: reason ? { reason } : {} });
    if (r.status === 401) {
      rejected();
      setStatus(els.blockStatus, "The admin token was rejected.", "error");
      return;
    }
    if (!r.ok) {
      setStatus(els.blockStatus, "Not blocked: " + r.message, "error");
      return;
    }
    setStatus(els.blockStatus, r.body.added ? "Blocked " + user + " on every instance." : user + " was already blocked.", "success");
    els.blockUser.value = "";
    els.blockReason.value = "";
    loadBlocklist();
  }

  async function unblock(user) {
    const r = await api("DELETE", "/api/v1/admin/blocklist/" + encodeURIComponent(user), { token });
    if (r.status === 401) {
      rejected();
      return;
    }
    setStatus(els.blockStatus, r.ok ? "Unblocked " + user + "." : "Not unblocked: " + r.message, r.ok ? "success" : "error");
    loadBlocklist();
  }

  // ------------------------------------------------------------ start

  els.tokenForm.addEventListener("submit", useToken);
  els.forget.addEventListener("click", forgetToken);
  els.createForm.addEventListener("submit", createSale);
  els.blockForm.addEventListener("submit", block);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  defaultWindow();
  showTokenState();
  refresh();
})();

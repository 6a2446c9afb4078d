// Helpers shared by the sale page and the admin page: one fetch wrapper that
// always yields {ok, status, code, message, body, retryAfter}, formatting,
// and sessionStorage access that survives browsers with storage disabled.
"use strict";

(function () {
  const REQUEST_TIMEOUT_MS = 8000;

  // The API has no currency field; every price is shown in US dollars.
  const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  const dateTime = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });

  // retryAfterMs reads a Retry-After header (seconds or an HTTP date) and
  // falls back to one second, the server's usual hint.
  function retryAfterMs(res) {
    const h = res && res.headers ? res.headers.get("Retry-After") : null;
    if (h) {
      const secs = Number(h);
      if (Number.isFinite(secs) && secs >= 0) return Math.max(secs * 1000, 250);
      const when = Date.parse(h);
      if (!Number.isNaN(when)) return Math.max(when - Date.now(), 250);
    }
    return 1000;
  }

  // api calls the JSON API. It never throws: a network failure or timeout is
  // {ok:false, status:0, code:"network"}.
  async function api(method, path, opts) {
    opts = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (opts.token) headers.Authorization = "Bearer " + opts.token;
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), opts.timeoutMs || REQUEST_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(path, { method, headers, body, cache: "no-store", signal: ctrl.signal });
    } catch (e) {
      clearTimeout(timer);
      return {
        ok: false, status: 0, code: "network", body: null, retryAfter: 1000,
        message: e && e.name === "AbortError" ? "The server took too long to answer." : "Cannot reach the server.",
      };
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    } finally {
      clearTimeout(timer);
    }
    const out = { ok: res.ok, status: res.status, body: data, code: "", message: "", retryAfter: 0 };
    if (!res.ok) {
      out.code = (data && data.error) || "http_" + res.status;
      out.message = (data && data.message) || "The server answered " + res.status + ".";
      if (res.status === 429 || res.status === 503) out.retryAfter = retryAfterMs(res);
    }
    return out;
  }

  const store = {
    get(key) {
      try {
        const v = sessionStorage.getItem(key);
        return v === null ? null : JSON.parse(v);
      } catch (e) {
        return null;
      }
    },
    set(key, value) {
      try {
        sessionStorage.setItem(key, JSON.stringify(value));
      } catch (e) { /* storage disabled or full: the page still works for this visit */ }
    },
    remove(key) {
      try {
        sessionStorage.removeItem(key);
      } catch (e) { /* see set */ }
    },
  };

  function formatPrice(cents) {
    return money.format((Number(cents) || 0) / 100);
  }

  function formatDate(ms) {
    return dateTime.format(new Date(ms));
  }

  // formatDuration renders a positive number of milliseconds as
  // "2d 03:04:05", "03:04:05" or "04:05", rounding up so the display shows
  // 00:01 until the very moment the sale opens.
  function formatDuration(ms) {
    let s = Math.max(0, Math.ceil(ms / 1000));
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const p = (n) => String(n).padStart(2, "0");
    const hms = (h > 0 || d > 0 ? p(h) + ":" : "") + p(m) + ":" + p(s);
    return d > 0 ? d + "d " + hms : hms;
  }

  // randomKey returns 128 random bits as hex; crypto.getRandomValues works
  // on plain-http origins too, unlike crypto.randomUUID.
  function randomKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  function plural(n, one, many) {
    return n === 1 ? one : many;
  }

  // syncList makes container show one entry per item, in the items' order,
  // reusing the entries in byId (created with create(item), refreshed with
  // update(entry, item)) and removing the ones whose item is gone (after
  // calling drop(entry), if given). Entries already in place are not moved,
  // because moving a node would drop keyboard focus.
  function syncList(container, byId, items, create, update, drop) {
    const seen = new Set();
    let prev = null;
    for (const item of items) {
      const id = String(item.id);
      seen.add(id);
      let entry = byId.get(id);
      if (!entry) {
        entry = create(item);
        byId.set(id, entry);
      }
      update(entry, item);
      const want = prev ? prev.el.nextElementSibling : container.firstElementChild;
      if (want !== entry.el) container.insertBefore(entry.el, want);
      prev = entry;
    }
    for (const [id, entry] of byId) {
      if (!seen.has(id)) {
        if (drop) drop(entry);
        entry.el.remove();
        byId.delete(id);
      }
    }
  }

  window.seckill = { api, store, formatPrice, formatDate, formatDuration, randomKey, plural, retryAfterMs, syncList };
})();

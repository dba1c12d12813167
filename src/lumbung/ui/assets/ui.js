// What every page shares: the operator key (sessionStorage: gone when the tab closes), JSON calls,
// server-sent events read over fetch (EventSource cannot send an Authorization header), NDJSON
// streams, and small DOM and formatting helpers. Hand-written, no dependencies, no build step.
"use strict";
const UI = (() => {
  const KEY = "lumbung.operatorKey";
  class AuthError extends Error {}

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    const key = sessionStorage.getItem(KEY);
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  async function errorText(res) {
    try {
      const body = await res.json();
      const e = body.error;
      return (e && (e.message || e)) || res.statusText;
    } catch (_) {
      return res.status + " " + res.statusText;
    }
  }

  // fetch with the key; 401/403 bring the login form back.
  async function call(path, opts) {
    opts = opts || {};
    const res = await fetch(path, Object.assign({}, opts, { headers: authHeaders(opts.headers) }));
    if (res.status === 401 || (res.status === 403 && path.startsWith("/ui/api/"))) {
      showLogin(await errorText(res));
      throw new AuthError("login needed");
    }
    return res;
  }

  async function api(path, opts) {
    const res = await call(path, opts);
    if (!res.ok) throw new Error(await errorText(res));
    return res.json();
  }

  // Reads "event:"/"data:" blocks from a streamed body; onEvent(name, data) for each.
  async function readEvents(res, onEvent) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(name, data.join("\n"));
      }
    }
  }

  async function readLines(res, onLine) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (value) buf += value;
      let cut;
      while ((cut = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, cut).trim();
        buf = buf.slice(cut + 1);
        if (line) onLine(JSON.parse(line));
      }
      if (done) return;
    }
  }

  // The dashboard's live feed: /ui/api/events, reconnecting after a pause when it drops.
  function live(topics, handlers) {
    const status = document.getElementById("live");
    const say = (text, cls) => {
      if (status) {
        status.textContent = text;
        status.className = "live " + (cls || "");
      }
    };
    let wait = 1000;
    const run = async () => {
      for (;;) {
        try {
          const res = await call("/ui/api/events?topics=" + topics.join(","), {
            headers: { Accept: "text/event-stream" },
          });
          if (!res.ok) throw new Error(await errorText(res));
          say("Live", "ok");
          wait = 1000;
          await readEvents(res, (name, data) => {
            if (handlers[name]) handlers[name](JSON.parse(data));
          });
        } catch (err) {
          if (err instanceof AuthError) return;
          say("Disconnected; retrying…", "warn");
        }
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 15000);
      }
    };
    run();
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fill(tbody, rows, empty, columns) {
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty))]));
  }

  const fmt = {
    bytes(n) {
      if (n === null || n === undefined) return "–";
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
      return (i ? n.toFixed(1) : n) + " " + units[i];
    },
    seconds(s) {
      if (s === null || s === undefined) return "–";
      if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
      const m = Math.floor(s / 60);
      return m < 60 ? m + " min " + Math.floor(s % 60) + " s" : Math.floor(m / 60) + " h " + (m % 60) + " min";
    },
    time(unix) {
      if (!unix) return "–";
      return new Date(unix * 1000).toLocaleString();
    },
    iso(text) {
      return text ? new Date(text).toLocaleString() : "–";
    },
    num(n, digits) {
      return n === null || n === undefined ? "–" : Number(n).toLocaleString(undefined, { maximumFractionDigits: digits || 0 });
    },
  };

  function showLogin(message) {
    sessionStorage.removeItem(KEY);
    document.getElementById("page").hidden = true;
    document.getElementById("logout").hidden = true;
    const form = document.getElementById("login");
    form.hidden = false;
    document.getElementById("login-error").textContent = message || "";
    document.getElementById("login-key").focus();
  }

  // Every page: ask whether the key (if any) is an operator's; then run the page's own code once.
  function start(init) {
    let started = false;
    const check = async () => {
      let res;
      try {
        res = await fetch("/ui/api/session", { headers: authHeaders() });
      } catch (err) {
        document.getElementById("login-error").textContent = "The server cannot be reached.";
        return;
      }
      if (!res.ok) {
        const had = sessionStorage.getItem(KEY);
        const why = res.status === 403 ? "That is an API key; the dashboard needs an operator key." : had ? await errorText(res) : "";
        showLogin(why);
        return;
      }
      const body = await res.json();
      document.getElementById("login").hidden = true;
      document.getElementById("page").hidden = false;
      document.getElementById("logout").hidden = !body.keys;
      if (!started) {
        started = true;
        init();
      }
    };
    document.addEventListener("DOMContentLoaded", () => {
      document.getElementById("login").addEventListener("submit", (ev) => {
        ev.preventDefault();
        const input = document.getElementById("login-key");
        sessionStorage.setItem(KEY, input.value.trim());
        input.value = "";
        check();
      });
      document.getElementById("logout").addEventListener("click", () => {
        sessionStorage.removeItem(KEY);
        location.reload();
      });
      check();
    });
  }

  return { api, call, authHeaders, errorText, readEvents, readLines, live, el, fill, fmt, start, AuthError };
})();

// Models: the store (pull with progress, verify, remove) and the local models' engines, live.
"use strict";
(() => {
  const { el, fill, fmt } = UI;
  const seen = {}; // model -> [unix time, generated tokens] at the previous update: tokens/s between
  const say = (id, text, cls) => {
    const node = document.getElementById(id);
    node.textContent = text;
    node.className = cls || "";
  };

  async function verify(name) {
    say("store-status", "Verifying " + name + "…");
    try {
      const r = await UI.api("/ui/api/verify", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ model: name }) });
      say("store-status", r.ok ? name + ": every file matches its sha256." : name + " is damaged: " + r.problems.join("; "), r.ok ? "ok" : "bad");
    } catch (err) {
      if (!(err instanceof UI.AuthError)) say("store-status", String(err.message || err), "bad");
    }
  }

  async function remove(name) {
    if (!confirm("Remove " + name + " from the store?")) return;
    try {
      const res = await UI.call("/api/delete", { method: "DELETE", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ model: name }) });
      if (!res.ok) throw new Error(await UI.errorText(res));
      say("store-status", "Removed " + name + ".", "ok");
    } catch (err) {
      if (!(err instanceof UI.AuthError)) say("store-status", String(err.message || err), "bad");
    }
  }

  function storeRow(m) {
    const actions = el("td", {},
      el("button", { type: "button", onclick: () => verify(m.name), "aria-label": "Verify " + m.name }, "Verify"), " ",
      m.removable ? el("button", { type: "button", onclick: () => remove(m.name), "aria-label": "Remove " + m.name }, "Remove") : null);
    return el("tr", { "data-model": m.name },
      el("th", { scope: "row" }, m.name, el("br"), el("span", { class: "muted mono" }, m.reference)),
      el("td", {}, m.source + (m.repo ? ": " + m.repo : "")),
      el("td", { class: "mono" }, m.revision ? m.revision.slice(0, 12) : "–"),
      el("td", {}, m.license || "–"),
      el("td", { class: "num" }, fmt.bytes(m.size_bytes)),
      el("td", { class: "mono", title: m.sha256 }, m.sha256.slice(0, 16) + "…"),
      el("td", { class: "verified" }, fmt.iso(m.verified_at)),
      actions);
  }

  function rate(m, now) {
    if (!m.loaded || m.generated_tokens === null) return null;
    const before = seen[m.id];
    seen[m.id] = [now, m.generated_tokens];
    if (!before || now <= before[0] || m.generated_tokens < before[1]) return null;
    return (m.generated_tokens - before[1]) / (now - before[0]);
  }

  function unloads(m, now) {
    if (!m.loaded) return "–";
    if (m.expires_at === null) return m.running || m.queued ? "when idle" : "never";
    return "in " + fmt.seconds(Math.max(0, m.expires_at - now));
  }

  function loadedRow(m, now) {
    const lookups = (m.prefix_cache_hits || 0) + (m.prefix_cache_misses || 0);
    const hits = lookups ? m.prefix_cache_hits + " of " + lookups : "–";
    const measured = rate(m, now);
    const tps = measured !== null && !m.running ? 0 : measured; // no event comes while nothing changes
    return el("tr", { "data-model": m.id },
      el("th", { scope: "row" }, m.id),
      el("td", {}, m.loaded ? "loaded" : "not loaded"),
      el("td", { class: "num" }, m.loaded ? fmt.bytes(m.memory_bytes) : "–"),
      el("td", { class: "num" }, m.loaded ? m.running + " of " + m.parallel : "–"),
      el("td", { class: "num" }, m.loaded ? m.queued : "–"),
      el("td", { class: "num" }, hits),
      el("td", { class: "num tps" }, tps === null ? "–" : tps.toFixed(1)),
      el("td", {}, unloads(m, now)));
  }

  let last = null; // the latest event and when it came: the countdowns and rates go on between events
  function renderLoaded(body, now) {
    fill(document.querySelector("#loaded tbody"), body.local.map((m) => loadedRow(m, now)), "No local models.", 8);
  }

  function render(body) {
    last = [body, performance.now()];
    fill(document.querySelector("#store tbody"), body.store.map(storeRow), "The store is empty: pull a model.", 8);
    renderLoaded(body, body.now);
  }

  async function pull(ev) {
    ev.preventDefault();
    const ref = document.getElementById("pull-ref").value.trim();
    const bar = document.getElementById("pull-progress");
    const button = ev.target.querySelector("button");
    button.disabled = true;
    bar.value = 0;
    bar.dataset.partial = 0; // progress lines seen between 0 and 100% (the tests read it)
    document.getElementById("pull-state").hidden = false;
    say("pull-status", "Asking for " + ref + "…");
    let failed = null;
    let last = "";
    try {
      const res = await UI.call("/api/pull", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ model: ref, stream: true }) });
      if (!res.ok) throw new Error(await UI.errorText(res));
      await UI.readLines(res, (line) => {
        if (line.error) { failed = line.error; return; }
        last = line.status;
        if (line.total) {
          const pct = (100 * (line.completed || 0)) / line.total;
          bar.value = pct;
          if (pct > 0 && pct < 100) bar.dataset.partial = Number(bar.dataset.partial || 0) + 1;
          document.getElementById("pull-percent").textContent = pct.toFixed(0) + "% of " + fmt.bytes(line.total);
        }
        say("pull-status", line.status);
      });
      if (failed) throw new Error(failed);
      if (last !== "success") throw new Error("the pull ended early (" + (last || "no progress") + ")");
      bar.value = 100;
      say("pull-status", "Pulled " + ref + ": every file matched its sha256 (verified).", "ok");
    } catch (err) {
      if (!(err instanceof UI.AuthError)) say("pull-status", "Pull failed: " + (err.message || err), "bad");
    } finally {
      button.disabled = false;
    }
  }

  UI.start(() => {
    document.getElementById("pull").addEventListener("submit", pull);
    UI.live(["models"], { models: render });
    // No event while nothing changes: then no tokens were made, and the unload countdown runs on.
    setInterval(() => last && renderLoaded(last[0], last[0].now + (performance.now() - last[1]) / 1000), 5000);
  });
})();

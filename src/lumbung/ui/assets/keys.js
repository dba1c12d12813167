// Keys: virtual keys over /admin/keys: create (the secret shown once), scopes, limits, revoke.
"use strict";
(() => {
  const { el, fill, fmt } = UI;
  const $ = (id) => document.getElementById(id);
  const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
  const say = (text, cls) => { $("keys-status").textContent = text; $("keys-status").className = cls || ""; };
  const fail = (err) => { if (!(err instanceof UI.AuthError)) say(String(err.message || err), "bad"); };

  function scopes(k) {
    const parts = [];
    if (k.routes && k.routes.length) parts.push("routes: " + k.routes.join(", "));
    if (k.models && k.models.length) parts.push("models: " + k.models.join(", "));
    if (k.egress && k.egress.length) parts.push("egress: " + k.egress.join(", "));
    return parts.join("; ") || "everything";
  }

  function limits(k) {
    const parts = [];
    if (k.rpm) parts.push(k.rpm + " req/min");
    if (k.tpm) parts.push(k.tpm + " tokens/min");
    if (k.max_concurrent) parts.push(k.max_concurrent + " at once");
    if (k.budget !== null && k.budget !== undefined) parts.push(k.budget + " per " + (k.period || "period"));
    return parts.join(", ") || "none";
  }

  async function revoke(k) {
    if (!confirm("Revoke " + k.name + "? Requests with it are refused from then on.")) return;
    const res = await UI.call("/admin/keys/" + encodeURIComponent(k.id), { method: "DELETE" });
    if (!res.ok) throw new Error(await UI.errorText(res));
    $("key-secret").hidden = true;
    say("Revoked " + k.name + ".", "ok");
    await load();
  }

  function row(k) {
    const active = k.state === "active";
    return el("tr", { "data-key": k.name, "data-id": k.id },
      el("th", { scope: "row" }, k.name, el("br"), el("span", { class: "muted mono" }, k.hint || k.id)),
      el("td", { class: "state " + (active ? "ok" : "bad") }, k.state),
      el("td", {}, scopes(k)),
      el("td", {}, limits(k)),
      el("td", {}, fmt.iso(k.created)),
      el("td", {}, k.expires ? fmt.iso(k.expires) : "never"),
      el("td", {}, active ? [
        el("button", { type: "button", "aria-label": "Revoke " + k.name, onclick: () => revoke(k).catch(fail) }, "Revoke"), " ",
        el("button", { type: "button", "aria-label": "Rotate " + k.name, onclick: () => rotate(k).catch(fail) }, "Rotate"),
      ] : null));
  }

  async function load() {
    const res = await UI.call("/admin/keys");
    if (res.status === 404) {
      say("This server has no virtual keys (GET /admin/keys answered 404).");
      return false;
    }
    if (!res.ok) throw new Error(await UI.errorText(res));
    const body = await res.json();
    const keys = body.data;
    fill(document.querySelector("#keys tbody"), keys.map(row), "No virtual keys yet.", 7);
    $("keys-create-section").hidden = false;
    $("keys-list-section").hidden = false;
    return true;
  }

  async function create(ev) {
    ev.preventDefault();
    const f = ev.target.elements;
    const number = (v) => (v.trim() === "" ? undefined : Number(v));
    const body = { name: f.name.value.trim(), routes: list(f.routes.value), models: list(f.models.value), egress: list(f.egress.value) };
    for (const name of ["rpm", "tpm", "max_concurrent", "budget"]) if (number(f[name].value) !== undefined) body[name] = number(f[name].value);
    if (f.period.value) body.period = f.period.value;
    if (number(f.expires_days.value) !== undefined) body.expires = number(f.expires_days.value) + "d";
    const res = await UI.call("/admin/keys", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(await UI.errorText(res));
    const made = await res.json();
    ev.target.reset();
    showSecret(made, "Created");
    await load();
  }

  function showSecret(made, what) {
    $("key-secret-value").textContent = made.key;
    $("key-secret").hidden = false;
    say(what + " " + made.name + ".", "ok");
  }

  async function rotate(k) {
    if (!confirm("Give " + k.name + " a new secret? The old one stops working.")) return;
    const res = await UI.call("/admin/keys/" + encodeURIComponent(k.id) + "/rotate", { method: "POST" });
    if (!res.ok) throw new Error(await UI.errorText(res));
    showSecret(await res.json(), "New secret for");
    await load();
  }

  UI.start(async () => {
    $("key-create").addEventListener("submit", (ev) => create(ev).catch(fail));
    try {
      if (await load()) say("");
    } catch (err) {
      fail(err);
    }
  });
})();

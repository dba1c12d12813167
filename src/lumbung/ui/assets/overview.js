// Overview: providers, routes and the failover timeline, pushed by /ui/api/events.
"use strict";
(() => {
  const { el, fill, fmt } = UI;

  function health(p) {
    const cls = p.health === "ok" ? "ok" : p.health === "degraded" ? "warn" : "bad";
    const text = p.health === "cut_off" ? "cut off" : p.health;
    return el("td", { class: "health " + cls }, text);
  }

  function providerRow(p) {
    const breakers = p.targets.map((t) => t.target.split("/").slice(1).join("/") + ": " + t.breaker);
    const requests = p.targets.reduce((n, t) => n + t.requests, 0);
    const failures = p.targets.reduce((n, t) => n + t.failures, 0);
    const errors = p.targets.map((t) => t.last_error).filter(Boolean);
    const cut = p.cut_off
      ? el("td", { class: "cutoff bad" }, "Cut off: " + (p.cut_off.reason || "?"), el("br"), el("span", { class: "muted" }, "for " + fmt.seconds(p.cut_off.for_s) + " more"))
      : el("td", { class: "cutoff muted" }, p.cut_offs ? "no (" + p.cut_offs + " before)" : "no");
    return el("tr", { "data-provider": p.name },
      el("th", { scope: "row" }, p.name, el("br"), el("span", { class: "muted mono" }, p.base_url || "")),
      el("td", {}, p.kind + " · " + p.jurisdiction),
      health(p),
      el("td", { class: "breakers" }, breakers.join(", ") || "–"),
      cut,
      el("td", { class: "num inflight" }, p.inflight),
      el("td", { class: "num" }, requests),
      el("td", { class: "num" }, failures),
      el("td", { class: "muted" }, errors.join("; ") || "–"));
  }

  function routeRow(r) {
    const tiers = r.tiers.map((tier, i) => (i + 1) + ". " + tier.map((m) => m.target + (m.weight !== 1 ? " ×" + m.weight : "")).join(", "));
    const serving = r.serving ? el("span", {}, r.serving.target, el("br"), el("span", { class: "muted" }, fmt.time(r.serving.at))) : el("span", { class: "muted" }, "no request yet");
    const next = r.ready.length ? r.ready.join(", ") : el("span", { class: "bad" }, "nowhere: no target is ready");
    return el("tr", { "data-route": r.name },
      el("th", { scope: "row" }, r.name, r.aliases.length ? el("span", { class: "muted" }, " (" + r.aliases.join(", ") + ")") : null),
      el("td", { class: "pre" }, tiers.join("\n")),
      el("td", { class: "serving" }, serving),
      el("td", { class: "next" }, next));
  }

  function outageRow(o) {
    return el("tr", { "data-route": o.route, "data-provider": o.provider },
      el("td", {}, fmt.time(o.at)),
      el("td", {}, o.route),
      el("th", { scope: "row", class: "bad" }, o.provider),
      el("td", { class: "muted" }, o.reason),
      el("td", { class: "to" }, o.to || el("span", { class: "bad" }, "no target answered")),
      el("td", { class: "num" }, o.moved),
      el("td", {}, o.ongoing ? fmt.seconds(o.lasted_s) + " so far" : fmt.seconds(o.lasted_s)));
  }

  function render(body) {
    fill(document.querySelector("#providers tbody"), body.providers.map(providerRow), "No providers configured: every model is served locally.", 9);
    fill(document.querySelector("#routes tbody"), body.routes.map(routeRow), "No routes configured.", 4);
    fill(document.querySelector("#timeline tbody"), body.timeline.map(outageRow), "No failover yet.", 7);
    const local = body.local.map((m) => m.id + (m.loaded ? " (loaded)" : ""));
    document.getElementById("local").textContent = local.length ? local.join(", ") : "None.";
  }

  UI.start(() => UI.live(["overview"], { overview: render }));
})();

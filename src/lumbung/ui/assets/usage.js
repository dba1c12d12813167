// Usage: the ledger's totals (/admin/usage) and its buckets over time (/ui/api/usage) as stacked bars.
"use strict";
(() => {
  const { el, fill, fmt } = UI;
  const SVG = "http://www.w3.org/2000/svg";
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c8c8c"];
  const TITLES = { requests: "Requests", tokens: "Tokens", spend: "Spend", savings: "Savings" };
  const $ = (id) => document.getElementById(id);

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    node.append(...children);
    return node;
  }

  let names = {}; // virtual key id -> its name, for the key view
  const label = (g) => (g === null ? "(none)" : names[g] ? names[g] + " (" + g + ")" : g);

  async function keyNames() {
    const res = await UI.call("/admin/keys");
    if (!res.ok) return {}; // no virtual keys here: ids and config keys' digests stand as they are
    return Object.fromEntries((await res.json()).data.map((k) => [k.id, k.name]));
  }

  function chart(name, body, currency) {
    const W = 600, H = 180, L = 48, B = 20;
    const rows = body.series[name];
    const n = body.buckets.length;
    const totals = body.buckets.map((_, i) => rows.reduce((s, r) => s + Math.max(0, r.values[i]), 0));
    const top = Math.max(...totals, 0);
    const money = name === "spend" || name === "savings";
    const show = (v) => (money ? v.toFixed(v < 1 ? 4 : 2) + " " + currency : fmt.num(v));
    const title = TITLES[name] + " per " + fmt.seconds(body.step) + (money ? " (" + currency + ")" : "");
    const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title + ": " + show(totals.reduce((a, b) => a + b, 0)) + " in all", "data-series": name });
    root.append(svg("title", {}, title));
    const bw = (W - L) / n;
    body.buckets.forEach((at, i) => {
      let y = H - B;
      rows.forEach((r, j) => {
        const v = Math.max(0, r.values[i]);
        if (!v || !top) return;
        const h = ((H - B - 10) * v) / top;
        y -= h;
        const bar = svg("rect", { x: L + i * bw + 1, y, width: Math.max(1, bw - 2), height: h, fill: COLOURS[j % COLOURS.length] });
        bar.append(svg("title", {}, label(r.group) + ", " + fmt.time(at) + ": " + show(v)));
        root.append(bar);
      });
    });
    root.append(svg("text", { x: 2, y: 12 }, show(top)), svg("text", { x: 2, y: H - B }, "0"));
    root.append(svg("text", { x: L, y: H - 4 }, fmt.time(body.buckets[0])), svg("text", { x: W - 4, y: H - 4, "text-anchor": "end" }, "now"));
    return el("figure", {}, el("figcaption", {}, title), root);
  }

  function legend(body) {
    return el("ul", { class: "legend", "aria-label": "Groups" }, body.groups.map((g, j) => el("li", {}, el("span", { class: "swatch c" + (j % COLOURS.length) }, "■"), " ", label(g))));
  }

  function totalRow(line, currency) {
    return el("tr", { "data-group": line.group === null ? "" : line.group },
      el("th", { scope: "row" }, label(line.group)),
      el("td", { class: "num" }, fmt.num(line.requests)),
      el("td", { class: "num" }, fmt.num(line.errors)),
      el("td", { class: "num" }, fmt.num(line.failovers)),
      el("td", { class: "num" }, fmt.num(line.prompt_tokens)),
      el("td", { class: "num" }, fmt.num(line.cached_tokens)),
      el("td", { class: "num" }, fmt.num(line.completion_tokens)),
      el("td", { class: "num" }, line.spend.toFixed(4) + " " + currency),
      el("td", { class: "num" }, line.savings.toFixed(4) + " " + currency));
  }

  async function show(ev) {
    if (ev) ev.preventDefault();
    const q = "?by=" + $("usage-by").value + "&since=" + $("usage-since").value;
    $("usage-status").textContent = "Loading…";
    try {
      const res = await UI.call("/admin/usage" + q);
      if (res.status === 404) {
        $("usage-status").textContent = "This server keeps no usage ledger (" + (await UI.errorText(res)) + ").";
        return;
      }
      if (!res.ok) throw new Error(await UI.errorText(res));
      const totals = await res.json();
      if (totals.by === "key") names = await keyNames();
      const over = await UI.api("/ui/api/usage" + q);
      const lines = totals.groups.concat(totals.groups.length > 1 ? [totals.total] : []);
      fill(document.querySelector("#usage-table tbody"), lines.map((l) => totalRow(l, totals.currency)), "No requests in this period.", 9);
      $("usage-charts").replaceChildren(legend(over), ...["requests", "tokens", "spend", "savings"].map((n) => chart(n, over, over.currency)));
      $("usage-status").textContent = totals.total.requests + " requests by " + totals.by + ".";
    } catch (err) {
      if (!(err instanceof UI.AuthError)) $("usage-status").textContent = String(err.message || err);
    }
  }

  UI.start(() => {
    $("usage-form").addEventListener("submit", show);
    show();
  });
})();

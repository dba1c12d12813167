// Reports: the replay and shadow reports under HOME/reports, listed and opened (drawn from their JSON).
"use strict";
(() => {
  const { el, fill, fmt } = UI;
  const $ = (id) => document.getElementById(id);
  const verdict = (passed) => (passed === true ? el("span", { class: "ok" }, "passed") : passed === false ? el("span", { class: "bad" }, "failed") : "–");
  const num = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? fmt.num(v, 4) : String(v));

  async function open(name) {
    const r = await UI.api("/ui/api/reports/" + encodeURIComponent(name));
    $("report-h").textContent = r.title || name;
    $("report-verdict").replaceChildren("Verdict: ", verdict(r.passed), " · candidate " + r.candidate + ", compared with " + r.baseline + " · " + (r.requests || []).length + " requests from " + r.recording);
    fill(document.querySelector("#report-thresholds tbody"), (r.thresholds || []).map((t) => el("tr", {}, el("th", { scope: "row" }, t.metric), el("td", {}, t.op + " " + t.value), el("td", { class: "num" }, num(t.actual)), el("td", {}, t.passed === null ? "not measured" : verdict(t.passed)))), "No thresholds were set.", 4);
    fill(document.querySelector("#report-checks tbody"), Object.entries(r.checks || {}).map(([k, c]) => el("tr", { "data-check": k }, el("th", { scope: "row" }, k), el("td", { class: "num" }, c.passed), el("td", { class: "num" }, c.applicable), el("td", { class: "num" }, c.rate === null ? "–" : (100 * c.rate).toFixed(1) + "%"))), "No checks.", 4);
    fill(document.querySelector("#report-metrics tbody"), Object.entries(r.metrics || {}).map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", { class: "num" }, num(v)))), "No metrics.", 2);
    $("report-worst").textContent = (r.worst || []).join(", ") || "None: every request passed its checks.";
    $("report").hidden = false;
    $("report").focus();
  }

  async function download(name) {
    const res = await UI.call("/ui/api/reports/" + encodeURIComponent(name) + ".html");
    if (!res.ok) throw new Error(await UI.errorText(res));
    const url = URL.createObjectURL(await res.blob());
    const a = el("a", { href: url, download: name + ".html" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function row(r) {
    const fail = (err) => { if (!(err instanceof UI.AuthError)) $("reports-status").textContent = String(err.message || err); };
    const actions = el("td", {},
      el("button", { type: "button", "aria-label": "Open " + r.name, onclick: () => open(r.name).catch(fail) }, "Open"), " ",
      r.html ? el("button", { type: "button", "aria-label": "Download the HTML page of " + r.name, onclick: () => download(r.name).catch(fail) }, "HTML") : null);
    if (r.error) return el("tr", { "data-report": r.name }, el("th", { scope: "row" }, r.name), el("td", { colspan: 7, class: "bad" }, r.error), el("td", {}));
    return el("tr", { "data-report": r.name },
      el("th", { scope: "row" }, r.title || r.name, el("br"), el("span", { class: "muted mono" }, r.name)),
      el("td", {}, r.kind), el("td", {}, r.candidate), el("td", {}, r.baseline), el("td", { class: "mono" }, r.recording),
      el("td", {}, fmt.time(r.created)), el("td", { class: "num" }, r.requests), el("td", { class: "verdict" }, verdict(r.passed)), actions);
  }

  UI.start(async () => {
    try {
      const body = await UI.api("/ui/api/reports");
      fill(document.querySelector("#reports tbody"), body.reports.map(row), "No reports yet: lumbung replay and lumbung shadow report write theirs to " + body.folder + ".", 9);
      $("reports-status").textContent = body.reports.length + " reports in " + body.folder + ".";
    } catch (err) {
      if (!(err instanceof UI.AuthError)) $("reports-status").textContent = String(err.message || err);
    }
  });
})();

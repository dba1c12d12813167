// Playground: a streamed chat through /v1/chat/completions, the same path every SDK takes, with the
// answer's timings and who answered (the x-lumbung-target header).
"use strict";
(() => {
  const { el } = UI;
  const $ = (id) => document.getElementById(id);
  const TOOL = {
    type: "function",
    function: {
      name: "get_weather",
      description: "The current weather in a city.",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  };
  let history = [];
  let abort = null;

  function bubble(role, text) {
    const body = el("span", { class: "text" }, text || "");
    const node = el("div", { class: "msg " + role }, el("b", {}, role), body);
    $("chat").append(node);
    $("chat").scrollTop = $("chat").scrollHeight;
    return body;
  }

  async function loadModels() {
    const body = await UI.api("/ui/api/overview");
    const select = $("model");
    const routes = body.routes.map((r) => r.name);
    const local = body.local.map((m) => m.id);
    const group = (label, names) => el("optgroup", { label }, names.map((n) => el("option", { value: n }, n)));
    select.replaceChildren(...[local.length ? group("Local models", local) : null, routes.length ? group("Routes", routes) : null].filter(Boolean));
  }

  function request() {
    const messages = [];
    if ($("system").value.trim()) messages.push({ role: "system", content: $("system").value });
    messages.push(...history);
    const body = {
      model: $("model").value,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      temperature: Number($("temperature").value),
      max_tokens: Number($("max-tokens").value),
    };
    if ($("json-mode").checked) body.response_format = { type: "json_object" };
    if ($("tools").checked) body.tools = [TOOL];
    return body;
  }

  function stat(id, text) { $(id).textContent = text; }

  async function send(ev) {
    if (ev) ev.preventDefault();
    const text = $("message").value;
    if (!text.trim() || abort) return;
    history.push({ role: "user", content: text });
    bubble("user", text);
    $("message").value = "";
    $("chat-error").textContent = "";
    for (const id of ["stat-ttft", "stat-tps", "stat-target", "stat-tokens", "stat-finish", "stat-id"]) stat(id, "…");
    const out = bubble("assistant", "");
    abort = new AbortController();
    $("send").disabled = true;
    $("stop").disabled = false;
    const started = performance.now();
    let first = null;
    let answer = "";
    const calls = {};
    let usage = null;
    let finish = null;
    let pieces = 0;
    try {
      const res = await UI.call("/v1/chat/completions", { method: "POST", signal: abort.signal, headers: { "Content-Type": "application/json" }, body: JSON.stringify(request()) });
      stat("stat-id", res.headers.get("x-request-id") || "–");
      if (!res.ok) throw new Error(await UI.errorText(res));
      stat("stat-target", res.headers.get("x-lumbung-target") || "–");
      await UI.readEvents(res, (_, data) => {
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || "the stream ended with an error");
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices || []) {
          const d = choice.delta || {};
          if (d.content) {
            if (first === null) first = performance.now();
            answer += d.content;
            pieces++;
            out.textContent = answer;
            out.setAttribute("data-chunks", pieces);
          }
          for (const call of d.tool_calls || []) {
            if (first === null) first = performance.now();
            const c = (calls[call.index] = calls[call.index] || { name: "", arguments: "" });
            if (call.function && call.function.name) c.name += call.function.name;
            if (call.function && call.function.arguments) c.arguments += call.function.arguments;
            out.textContent = answer + Object.values(calls).map((x) => "\n→ tool call " + x.name + "(" + x.arguments + ")").join("");
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        $("chat").scrollTop = $("chat").scrollHeight;
      });
      const end = performance.now();
      history.push({ role: "assistant", content: answer });
      stat("stat-ttft", first === null ? "–" : ((first - started) / 1000).toFixed(2) + " s");
      const tokens = usage ? usage.completion_tokens : pieces;
      stat("stat-tps", first !== null && end > first && tokens > 1 ? ((tokens - 1) / ((end - first) / 1000)).toFixed(1) : "–");
      if (usage) {
        const cached = (usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens) || 0;
        stat("stat-tokens", usage.prompt_tokens + " / " + cached + " / " + usage.completion_tokens);
      } else stat("stat-tokens", "–");
      stat("stat-finish", finish || "–");
    } catch (err) {
      history.pop();
      if (err.name === "AbortError") stat("stat-finish", "stopped");
      else if (!(err instanceof UI.AuthError)) $("chat-error").textContent = String(err.message || err);
    } finally {
      abort = null;
      $("send").disabled = false;
      $("stop").disabled = true;
      $("message").focus();
    }
  }

  UI.start(() => {
    loadModels().catch((err) => { $("chat-error").textContent = "Models: " + (err.message || err); });
    $("chat-form").addEventListener("submit", send);
    $("message").addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) send(ev); });
    $("stop").addEventListener("click", () => abort && abort.abort());
    $("clear").addEventListener("click", () => { history = []; $("chat").replaceChildren(); $("message").focus(); });
  });
})();

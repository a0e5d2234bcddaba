// The Playground: streams a chat completion from the router's /v1 with fetch, reading its SSE events
// from the response body. The API key stays in the page; it is sent only to /v1.
// Limits (README, "Router pages"): the answer box keeps the last MAX_KEPT_CHARS characters of an answer
// (a long one never freezes the tab) and redraws at most once a frame; the key is trimmed and checked first.
(function () {
  "use strict";
  var MAX_KEPT_CHARS = 100000;
  var KEY_PREFIX = "sk-inv-";

  // Why `raw` cannot be a key, or "" when it may be (the router alone knows whether it exists).
  function keyProblem(raw) {
    var key = (raw || "").trim();
    if (!key) return "Paste an API key: create one on the API keys page (it starts with " + KEY_PREFIX + ").";
    if (/\s/.test(key)) return "The key holds spaces or line breaks: copy it again, in one piece.";
    if (key.indexOf(KEY_PREFIX) !== 0) return "This is not an Inventiv API key: those start with " + KEY_PREFIX + ".";
    return "";
  }

  // What the router's refusal means for the person at the keyboard.
  function refusal(status, message) {
    if (status === 401) return "The router does not know this key, or it was revoked: create a key on the API keys page. (" + message + ")";
    if (status === 403) return "This key may not use this model: " + message;
    if (status === 429) return "This key is over its rate limit: " + message;
    return "Error " + status + ": " + message;
  }

  function tokenCounts(usage, chunks) {
    if (usage) return usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion tokens";
    return chunks + " chunks received";
  }

  function parseEvents(buffer, onData) {
    // SSE events end with a blank line; what follows the last one is an incomplete event kept for later.
    const events = buffer.split(/\r?\n\r?\n/);
    const rest = events.pop();
    for (const event of events) {
      const data = event.split(/\r?\n/).filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart()).join("\n");
      if (data) onData(data);
    }
    return rest;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || JSON.stringify(body);
    } catch (_) {
      return response.statusText;
    }
  }

  function init() {
    const form = document.getElementById("playground-form");
    if (!form) return;
    const model = document.getElementById("pg-model");
    const output = document.getElementById("pg-output");
    const status = document.getElementById("pg-status");
    const send = document.getElementById("pg-send");
    const stop = document.getElementById("pg-stop");
    let controller = null;

    const base = window.location.origin + "/v1";
    document.querySelectorAll(".snippet-base").forEach((el) => { el.textContent = base; });
    const showModel = () => document.querySelectorAll(".snippet-model").forEach((el) => { el.textContent = model.value; });
    model.addEventListener("change", showModel);
    showModel();
    stop.addEventListener("click", () => controller && controller.abort());

    const keyInput = document.getElementById("pg-key");
    const tokens = document.getElementById("pg-tokens");
    // The answer: kept here, cut to its last MAX_KEPT_CHARS, and drawn once per frame.
    let answer = "";
    let trimmed = false;
    let drawPending = false;
    function draw() {
      drawPending = false;
      output.textContent = (trimmed ? "… (earlier text dropped: only the last " + MAX_KEPT_CHARS + " characters are kept)\n" : "") + answer;
      output.scrollTop = output.scrollHeight;
    }
    function append(text) {
      answer += text;
      if (answer.length > MAX_KEPT_CHARS) { answer = answer.slice(answer.length - MAX_KEPT_CHARS); trimmed = true; }
      if (!drawPending) { drawPending = true; window.requestAnimationFrame(draw); }
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      keyInput.value = keyInput.value.trim();
      const problem = keyProblem(keyInput.value);
      keyInput.setCustomValidity(problem);
      if (!form.reportValidity()) { status.textContent = problem; keyInput.setCustomValidity(""); return; }
      keyInput.setCustomValidity("");
      controller = new AbortController();
      answer = ""; trimmed = false; draw();
      tokens.textContent = "";
      status.textContent = "Waiting for the first token…";
      send.disabled = true;
      stop.disabled = false;
      const started = performance.now();
      let firstTokenMs = null;
      try {
        const response = await fetch(form.dataset.endpoint, {
          method: "POST",
          signal: controller.signal,
          headers: {
            "Content-Type": "application/json",
            "Authorization": "Bearer " + keyInput.value,
          },
          body: JSON.stringify({
            model: model.value,
            stream: true,
            stream_options: { include_usage: true },
            max_tokens: parseInt(document.getElementById("pg-max-tokens").value, 10) || undefined,
            messages: [{ role: "user", content: document.getElementById("pg-message").value }],
          }),
        });
        if (!response.ok) {
          status.textContent = refusal(response.status, await errorMessage(response));
          return;
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        let done = false;
        let usage = null;
        let chunks = 0;
        while (!done) {
          const chunk = await reader.read();
          if (chunk.done) break;
          buffer = parseEvents(buffer + decoder.decode(chunk.value, { stream: true }), (data) => {
            if (data === "[DONE]") { done = true; return; }
            const payload = JSON.parse(data);
            if (payload.error) throw new Error(payload.error.message || "stream error");
            if (payload.usage) usage = payload.usage;
            const delta = payload.choices && payload.choices[0] && payload.choices[0].delta;
            if (delta && delta.content) {
              if (firstTokenMs === null) firstTokenMs = performance.now() - started;
              chunks += 1;
              append(delta.content);
              tokens.textContent = tokenCounts(usage, chunks);
            }
          });
        }
        tokens.textContent = tokenCounts(usage, chunks);
        const total = Math.round(performance.now() - started);
        status.textContent = done
          ? "Done in " + total + " ms" + (firstTokenMs !== null ? " (first token after " + Math.round(firstTokenMs) + " ms)" : "") + "."
          : "The stream ended without [DONE] after " + total + " ms.";
      } catch (error) {
        status.textContent = error.name === "AbortError" ? "Stopped." : "Failed: " + error.message;
      } finally {
        send.disabled = false;
        stop.disabled = true;
        controller = null;
      }
    });
  }

  // For tests: the key check alone.
  window.inventivPlayground = {keyProblem: keyProblem, MAX_KEPT_CHARS: MAX_KEPT_CHARS};
  document.addEventListener("DOMContentLoaded", init);
})();

// The Playground: streams a chat completion from the router's /v1 with fetch, reading its SSE events
// from the response body. The API key stays in the page; it is sent only to /v1.
(function () {
  "use strict";

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

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      controller = new AbortController();
      output.textContent = "";
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
            "Authorization": "Bearer " + document.getElementById("pg-key").value.trim(),
          },
          body: JSON.stringify({
            model: model.value,
            stream: true,
            max_tokens: parseInt(document.getElementById("pg-max-tokens").value, 10) || undefined,
            messages: [{ role: "user", content: document.getElementById("pg-message").value }],
          }),
        });
        if (!response.ok) {
          status.textContent = "Error " + response.status + ": " + (await errorMessage(response));
          return;
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        let done = false;
        while (!done) {
          const chunk = await reader.read();
          if (chunk.done) break;
          buffer = parseEvents(buffer + decoder.decode(chunk.value, { stream: true }), (data) => {
            if (data === "[DONE]") { done = true; return; }
            const payload = JSON.parse(data);
            if (payload.error) throw new Error(payload.error.message || "stream error");
            const delta = payload.choices && payload.choices[0] && payload.choices[0].delta;
            if (delta && delta.content) {
              if (firstTokenMs === null) firstTokenMs = performance.now() - started;
              output.textContent += delta.content;
            }
          });
        }
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

  document.addEventListener("DOMContentLoaded", init);
})();

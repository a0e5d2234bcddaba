"""Reading token usage out of engine answers without parsing whole bodies, and the SSE pass-through.

vLLM puts `usage` last: at the end of a JSON answer, and in the last event of a stream when
`stream_options.include_usage` is set (then `data: [DONE]`).
"""

from __future__ import annotations

import json

import orjson

USAGE_KEY = b'"usage"'
EVENT_END = b"\n\n"
DONE_EVENT = b"data: [DONE]\n\n"
# How many objects a usage object may nest (vLLM's: `prompt_tokens_details`) before the whole answer is decoded.
USAGE_NESTING = 2

Usage = tuple[int, int]  # prompt tokens, completion tokens


def usage_of(value) -> Usage | None:
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens", 0)
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


def usage_from_json(body: bytes) -> Usage | None:
    """The `usage` of a JSON answer. Decodes only the object after the last `"usage"` key (an embeddings
    answer can be megabytes); falls back to parsing the whole body when that is not where it is."""
    at = body.rfind(USAGE_KEY)
    if at < 0:
        return None
    if at == 0 or body[at - 1] != 0x5C:  # not an escaped quote inside generated text
        colon = body.find(b":", at + len(USAGE_KEY))
        if colon > 0:
            # The object ends at the `}` that closes as many braces as it opened (vLLM's nests one object,
            # `prompt_tokens_details`, and no text): orjson reads that slice.
            end = body.find(b"}", colon)
            for _ in range(USAGE_NESTING):
                if end < 0 or body.count(b"{", colon, end) == body.count(b"}", colon, end + 1):
                    break
                end = body.find(b"}", end + 1)
            if end > 0:
                try:
                    found = usage_of(orjson.loads(body[colon + 1:end + 1]))
                except orjson.JSONDecodeError:
                    found = None
                if found is not None:
                    return found
    try:
        whole = json.loads(body)
    except ValueError:
        return None
    return usage_of(whole.get("usage")) if isinstance(whole, dict) else None


class SseRelay:
    """Passes an engine's SSE stream through, event-aligned, noting usage and the final [DONE].

    With `strip_usage` (the router asked for usage on the client's behalf), the usage-only event
    (`"choices": []`) is kept from the client, who did not ask for it.
    """

    def __init__(self, *, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self.usage: Usage | None = None
        self.done = False
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The complete events in `chunk` (plus what was pending) to send now; the rest waits."""
        data = self._pending + chunk if self._pending else chunk
        end = data.rfind(EVENT_END)
        if end < 0:
            self._pending = data
            return b""
        end += len(EVENT_END)
        complete, self._pending = data[:end], data[end:]
        if USAGE_KEY in complete:
            complete = self._take_usage(complete)
        if complete.endswith(DONE_EVENT):
            self.done = True
        return complete

    def leftover(self) -> bytes:
        """An unterminated last event, sent as it is when the stream ends."""
        pending, self._pending = self._pending, b""
        return pending

    def _take_usage(self, complete: bytes) -> bytes:
        kept = []
        for event in complete.split(EVENT_END)[:-1]:
            if USAGE_KEY in event and event.startswith(b"data: {"):
                try:
                    payload = json.loads(event[len(b"data: "):])
                except ValueError:
                    payload = None
                if isinstance(payload, dict):
                    found = usage_of(payload.get("usage"))
                    if found is not None:
                        self.usage = found
                        if self.strip_usage and payload.get("choices") == []:
                            continue
            kept.append(event + EVENT_END)
        return b"".join(kept)

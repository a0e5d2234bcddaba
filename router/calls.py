"""A client's request as the router forwards it: the checks the router relies on, and the `Call` they
produce. The engine checks everything else, and its 400s are relayed."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass

from router import errors
from router.prefixes import NO_PREFIX, Prefix, chat_prefix, text_prefix

# Each generation route, with the field its body must carry.
ROUTES = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    "/v1/embeddings": "input",
}
STREAMING_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})
PATH_BYTES = {path: path.encode() for path in ROUTES}


@dataclass(slots=True)
class Call:
    """A validated client request, ready to forward."""

    path: str
    model: str
    body: bytes
    stream: bool
    # The router added `stream_options.include_usage`; the usage event is not the client's to see.
    strip_usage: bool
    session_id: str | None
    # The prompt's blocks, for cache-aware routing (NO_PREFIX when not asked for, or for embeddings).
    prefix: Prefix = NO_PREFIX

    @property
    def path_bytes(self) -> bytes:
        return PATH_BYTES[self.path]


def _json_of(body: bytes):
    """json.loads(body), quicker for UTF-8: json.loads of bytes first detects the encoding (UTF-16 and -32
    too) and decodes with an error handler that skips the ASCII fast path, which costs as much as parsing a
    small body. What could be another encoding (a BOM, a NUL in the first bytes) or is not strict UTF-8
    takes json.loads's own way, so the answer (and the error) is the same."""
    if body[:3] != codecs.BOM_UTF8 and 0 not in body[:2]:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            pass
        else:
            return json.loads(text)
    return json.loads(body)


def parse_call(path: str, body: bytes, session_id: str | None, *, with_prefix: bool = False) -> Call:
    """Check what the router relies on; the engine checks the rest and its 400s are relayed."""
    try:
        payload = _json_of(body)
    except ValueError as exc:
        raise errors.bad_request(f"The body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise errors.bad_request("The body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise errors.bad_request("`model` is required: the code of the model to use.", param="model")
    field = ROUTES[path]
    value = payload.get(field)
    if field == "messages":
        if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
            raise errors.bad_request("`messages` must be a non-empty list of message objects.", param="messages")
    elif not (isinstance(value, str) or (isinstance(value, list) and value)):
        raise errors.bad_request(f"`{field}` must be a string or a non-empty list.", param=field)
    stream = payload.get("stream") or False
    if not isinstance(stream, bool):
        raise errors.bad_request("`stream` must be true or false.", param="stream")
    stream = stream and path in STREAMING_ROUTES
    strip_usage = False
    if stream:
        options = payload.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            # Token counts come from the usage event: ask for it, and keep it from the client.
            payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            body = json.dumps(payload).encode()
            strip_usage = True
    prefix = NO_PREFIX
    if with_prefix:
        prefix = chat_prefix(value) if field == "messages" else text_prefix(value) if field == "prompt" else NO_PREFIX
    return Call(path=path, model=model, body=body, stream=stream, strip_usage=strip_usage, session_id=session_id,
                prefix=prefix)

"""A client's request as the router forwards it: the checks the router relies on, and the `Call` they
produce. The engine checks everything else, and its 400s are relayed."""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass

import orjson

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


def _json_of(body: bytes, *, exact: bool = False):
    """json.loads(body), by orjson when it can: under bench/router.py parsing the body was the largest single
    cost of admitting a request (2.5 us by json.loads, 0.6 us by orjson, for the benchmark's small chat).
    What orjson refuses and json.loads takes (NaN and Infinity, integers past 64 bits, lone surrogates, a
    BOM, UTF-16 or -32), and any invalid body, takes json.loads's own way, so the answer (and the error
    message) is json.loads's. Before it, a body that could be another encoding (a BOM, a NUL in the first
    bytes) or is not strict UTF-8 is decoded by json.loads itself.

    One value differs: orjson reads an integer past 64 bits as a float. The router reads no number, but a
    body it writes again (a stream's, in `parse_call`) is read `exact`ly, by json.loads."""
    if not exact:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    if body[:3] != codecs.BOM_UTF8 and 0 not in body[:2]:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            pass
        else:
            return json.loads(text)
    return json.loads(body)


def _all_dicts(values: list) -> bool:
    for value in values:  # a loop, not all() of a generator: most chats are a message or two
        if not isinstance(value, dict):
            return False
    return True


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
        if not isinstance(value, list) or not value or not _all_dicts(value):
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
            payload = _json_of(body, exact=True)
            payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
            body = json.dumps(payload).encode()
            strip_usage = True
    prefix = NO_PREFIX
    if with_prefix:
        prefix = chat_prefix(value) if field == "messages" else text_prefix(value) if field == "prompt" else NO_PREFIX
    return Call(path=path, model=model, body=body, stream=stream, strip_usage=strip_usage, session_id=session_id,
                prefix=prefix)

"""The OpenAI-compatible routes under /v1, shaped as vLLM answers them."""

import json
import time
import uuid
from typing import Any

from aiohttp import web

from . import errors
from .engine import SimEngine
from .sse import stream_completion, usage
from .textgen import (
    DEFAULT_MAX_TOKENS,
    answer_tokens,
    chat_tokens,
    count_tokens,
    embed,
    generate_words,
    last_user_text,
)

ENGINE_KEY: web.AppKey[SimEngine] = web.AppKey("engine", SimEngine)

JsonBody = dict[str, Any]


class RequestError(Exception):
    """Raised while reading a request; carries the ready-made error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


def authorize(engine: SimEngine, request: web.Request) -> None:
    """vLLM's --api-key check: an exact `Bearer <key>` header, for /v1 routes only."""
    api_key = engine.config.api_key
    if api_key is not None and request.headers.get("Authorization") != f"Bearer {api_key}":
        raise RequestError(errors.unauthorized())


async def read_body(engine: SimEngine, request: web.Request) -> JsonBody:
    authorize(engine, request)
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        raise RequestError(errors.bad_request(f"Invalid JSON body: {exc}")) from None
    if not isinstance(body, dict):
        raise RequestError(errors.bad_request("The request body must be a JSON object."))
    model = body.get("model")
    if model is None:
        body["model"] = engine.config.served_model_names[0]  # vLLM defaults to its first served name
    elif model not in engine.config.served_model_names:
        raise RequestError(errors.model_not_found(str(model)))
    if engine.dead:
        raise RequestError(errors.engine_dead())
    return body


def read_max_tokens(body: JsonBody, *names: str) -> int:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RequestError(errors.bad_request(f"{name} must be a positive integer.", param=name))
        return value
    return DEFAULT_MAX_TOKENS


def refuse_beyond_context(engine: SimEngine, body: JsonBody, prompt_tokens: int, *names: str) -> None:
    """vLLM's check: the prompt plus the output the client asked for (0 when it did not) must fit the
    model's context."""
    requested = next((body[name] for name in names if body.get(name) is not None), 0)
    limit = engine.config.max_model_len
    if prompt_tokens > limit - requested:
        raise RequestError(errors.context_too_long(prompt_tokens=prompt_tokens, max_tokens=requested,
                                                   max_model_len=limit))


def json_response(payload: JsonBody) -> web.Response:
    return web.Response(body=json.dumps(payload).encode(), content_type="application/json")


async def list_models(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE_KEY]
    try:
        authorize(engine, request)
    except RequestError as exc:
        return exc.response
    config = engine.config
    created = int(time.time())
    cards = [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": config.model,
            "parent": None,
            "max_model_len": config.max_model_len,
            "permission": [],
        }
        for name in config.served_model_names
    ]
    return json_response({"object": "list", "data": cards})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE_KEY]
    try:
        body = await read_body(engine, request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise RequestError(errors.bad_request("messages must be a non-empty list of objects.", "messages"))
        max_tokens = read_max_tokens(body, "max_completion_tokens", "max_tokens")
        tokens = chat_tokens(messages)
        refuse_beyond_context(engine, body, len(tokens), "max_completion_tokens", "max_tokens")
    except RequestError as exc:
        return exc.response
    prompt_tokens = len(tokens)
    words = generate_words(last_user_text(messages), max_tokens)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.get("stream"):
        return await stream_completion(request, engine, body, [words], [tokens], completion_id, chat=True)
    await engine.generate([words], prompt_tokens=prompt_tokens, prompts=[tokens],
                          continuations=[answer_tokens(words)])
    return json_response(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words), "tool_calls": []},
                    "logprobs": None,
                    "finish_reason": "length",
                    "stop_reason": None,
                }
            ],
            "usage": usage(prompt_tokens, len(words)),
            "prompt_logprobs": None,
        }
    )


async def completions(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE_KEY]
    try:
        body = await read_body(engine, request)
        prompts = body.get("prompt")
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise RequestError(errors.bad_request("prompt must be a string or a list of strings.", "prompt"))
        max_tokens = read_max_tokens(body, "max_tokens")
        token_lists = [prompt.split() for prompt in prompts]
        for tokens in token_lists:
            refuse_beyond_context(engine, body, len(tokens), "max_tokens")
    except RequestError as exc:
        return exc.response
    prompt_tokens = sum(len(tokens) for tokens in token_lists)
    choices = [generate_words(prompt, max_tokens) for prompt in prompts]
    completion_id = f"cmpl-{uuid.uuid4().hex}"
    if body.get("stream"):
        return await stream_completion(request, engine, body, choices, token_lists, completion_id, chat=False)
    await engine.generate(choices, prompt_tokens=prompt_tokens, prompts=token_lists, continuations=choices)
    return json_response(
        {
            "id": completion_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": index,
                    "text": " ".join(words),
                    "logprobs": None,
                    "finish_reason": "length",
                    "stop_reason": None,
                    "prompt_logprobs": None,
                }
                for index, words in enumerate(choices)
            ],
            "usage": usage(prompt_tokens, sum(len(words) for words in choices)),
        }
    )


async def embeddings(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE_KEY]
    try:
        body = await read_body(engine, request)
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
            raise RequestError(errors.bad_request("input must be a string or a list of strings.", "input"))
        for text in inputs:
            refuse_beyond_context(engine, {}, count_tokens(text))
    except RequestError as exc:
        return exc.response
    prompt_tokens = sum(count_tokens(text) for text in inputs)
    await engine.generate([], prompt_tokens=prompt_tokens)
    return json_response(
        {
            "id": f"embd-{uuid.uuid4().hex}",
            "object": "list",
            "created": int(time.time()),
            "model": body["model"],
            "data": [
                {"index": index, "object": "embedding", "embedding": embed(text)} for index, text in enumerate(inputs)
            ],
            "usage": usage(prompt_tokens, 0),
        }
    )

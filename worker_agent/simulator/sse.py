"""Server-sent events as vLLM writes them for `stream: true`."""

import json
import time
from typing import Any

from aiohttp import web

from .engine import SimEngine
from .textgen import answer_tokens

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
SSE_DONE = b"data: [DONE]\n\n"

JsonBody = dict[str, Any]


def usage(prompt_tokens: int, completion_tokens: int) -> JsonBody:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


async def stream_completion(
    request: web.Request,
    engine: SimEngine,
    body: JsonBody,
    choices: list[list[str]],
    prompts: list[list[str]],
    completion_id: str,
    *,
    chat: bool,
) -> web.StreamResponse:
    """SSE framing as vLLM writes it: one `data: {json}` event per token, usage last, then [DONE].
    `prompts`: the tokens of each prompt."""
    prompt_tokens = sum(len(tokens) for tokens in prompts)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    created = int(time.time())
    envelope = {
        "id": completion_id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": body["model"],
    }

    async def send(choices_payload: list[JsonBody], **extra: Any) -> None:
        chunk = {**envelope, "choices": choices_payload, **extra}
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    async def on_token(index: int, position: int, word: str) -> None:
        last = position == len(choices[index]) - 1
        text = word if position == 0 else " " + word
        finish = "length" if last else None
        if chat:
            if position == 0:
                await send([{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                             "finish_reason": None}])
            await send([{"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}])
        else:
            await send([{"index": index, "text": text, "logprobs": None, "finish_reason": finish,
                         "stop_reason": None}])

    continuations = [answer_tokens(words) for words in choices] if chat else choices
    await engine.generate(choices, prompt_tokens=prompt_tokens, prompts=prompts, continuations=continuations,
                          on_token=on_token)
    stream_options = body.get("stream_options")
    if isinstance(stream_options, dict) and stream_options.get("include_usage"):
        await send([], usage=usage(prompt_tokens, sum(len(words) for words in choices)))
    await response.write(SSE_DONE)
    await response.write_eof()
    return response

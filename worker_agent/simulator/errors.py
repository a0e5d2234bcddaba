"""vLLM's error bodies.

Current vLLM (`vllm/entrypoints/openai/engine/protocol.py`: `ErrorResponse(error=ErrorInfo(...))`)
answers `{"error": {"message", "type", "param", "code"}}`; the API-key middleware answers a bare
`{"error": "Unauthorized"}`.
"""

import json

from aiohttp import web

UNAUTHORIZED_BODY = b'{"error": "Unauthorized"}'


def error_response(message: str, *, err_type: str, status: int, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": err_type, "param": param, "code": status}}
    return web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")


def bad_request(message: str, param: str | None = None) -> web.Response:
    return error_response(message, err_type="BadRequestError", status=400, param=param)


def context_too_long(*, prompt_tokens: int, max_tokens: int, max_model_len: int) -> web.Response:
    """vLLM's refusal of a prompt that leaves no room for the requested output (a VLLMValidationError)."""
    return error_response(
        f"You passed {prompt_tokens} input tokens and requested {max_tokens} output tokens. However, the "
        f"model's context length is only {max_model_len} tokens, resulting in a maximum input length of "
        f"{max_model_len - max_tokens} tokens. Please reduce the length of the input prompt. "
        f"(parameter=input_tokens, value={prompt_tokens})",
        err_type="BadRequestError", status=400, param="input_tokens",
    )


def model_not_found(model: str) -> web.Response:
    return error_response(
        f"The model `{model}` does not exist.", err_type="NotFoundError", status=404, param="model"
    )


def engine_dead() -> web.Response:
    return error_response("Engine is dead.", err_type="InternalServerError", status=500)


def unauthorized() -> web.Response:
    return web.Response(body=UNAUTHORIZED_BODY, status=401, content_type="application/json")

"""Reading a client's body (router/calls.py): orjson where it reads what json.loads would, json.loads elsewhere."""

import codecs
import json

import pytest

from router import errors
from router.calls import parse_call

CHAT = "/v1/chat/completions"


def chat(**fields) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


@pytest.mark.parametrize("body", [
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',  # orjson refuses NaN
    codecs.BOM_UTF8 + json.dumps(chat()).encode(),  # and a BOM
    json.dumps(chat()).encode("utf-16"),  # and another encoding
    json.dumps(chat(user="\ud800")).encode(),  # and a lone surrogate
])
def test_a_body_json_loads_reads_is_read(body):
    call = parse_call(CHAT, body, None)
    assert call.model == "m" and call.body == body


def test_invalid_json_gets_json_loads_message():
    with pytest.raises(errors.ApiError) as refused:
        parse_call(CHAT, b'{"model": "m",', None)
    assert refused.value.status == 400
    assert refused.value.message.startswith("The body is not valid JSON: Expecting property name enclosed in double")


def test_a_rewritten_stream_body_keeps_every_value_exactly():
    # orjson would read the 30-digit integer as a float; the body the router writes again must not change it.
    body = json.dumps(chat(stream=True, seed=123456789012345678901234567890, temperature=0.1)).encode()
    call = parse_call(CHAT, body, None)
    assert call.strip_usage
    assert json.loads(call.body) == {**json.loads(body), "stream_options": {"include_usage": True}}
    assert b"123456789012345678901234567890" in call.body

"""Reading usage from engine answers, and relaying SSE event by event."""

import json

from router.streams import SseRelay, usage_from_json


def event(payload) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


USAGE_EVENT = event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})
TOKEN_EVENT = event({"choices": [{"index": 0, "delta": {"content": "hi"}}]})
DONE = b"data: [DONE]\n\n"


def test_usage_is_read_from_the_end_of_a_json_answer():
    body = json.dumps({"choices": [{"text": "x"}], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}).encode()
    assert usage_from_json(body) == (7, 2)


def test_usage_with_nested_details_or_after_the_usage_is_read():
    nested = {"prompt_tokens": 7, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}
    for usage in (nested, {**nested, "prompt_tokens_details": {"cached_tokens": 4, "more": {"deep": {"er": 1}}}}):
        body = json.dumps({"choices": [{"text": "x"}], "usage": usage, "prompt_logprobs": None}).encode()
        assert usage_from_json(body) == (7, 2)
        assert usage_from_json(json.dumps({"usage": usage}, indent=2).encode()) == (7, 2)


def test_usage_words_inside_generated_text_do_not_confuse_it():
    body = json.dumps({"usage": {"prompt_tokens": 1, "completion_tokens": 4},
                       "choices": [{"text": 'say "usage": 99'}]}).encode()
    assert usage_from_json(body) == (1, 4)


def test_an_answer_without_usage_has_none():
    assert usage_from_json(b'{"data": []}') is None
    assert usage_from_json(b"not json \"usage\"") is None


def test_the_relay_holds_partial_events_until_they_are_complete():
    relay = SseRelay(strip_usage=False)
    assert relay.feed(TOKEN_EVENT[:10]) == b""
    assert relay.feed(TOKEN_EVENT[10:] + TOKEN_EVENT[:5]) == TOKEN_EVENT
    assert relay.feed(TOKEN_EVENT[5:] + USAGE_EVENT + DONE) == TOKEN_EVENT + USAGE_EVENT + DONE
    assert relay.usage == (3, 5) and relay.done


def test_the_usage_event_the_router_asked_for_is_kept_from_the_client():
    relay = SseRelay(strip_usage=True)
    assert relay.feed(TOKEN_EVENT + USAGE_EVENT + DONE) == TOKEN_EVENT + DONE
    assert relay.usage == (3, 5)


def test_a_stream_cut_before_done_is_not_done():
    relay = SseRelay(strip_usage=False)
    relay.feed(TOKEN_EVENT + b"data: {\"choi")
    assert not relay.done
    assert relay.leftover() == b"data: {\"choi"

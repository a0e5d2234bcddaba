"""Deterministic stand-ins for a model: the output is a pure function of the prompt and max_tokens.

A "token" is a whitespace-separated word, so counts are easy to predict in tests.
"""

import hashlib
import math
import struct
from typing import Any

DEFAULT_MAX_TOKENS = 16
EMBEDDING_DIMENSIONS = 16
FILLER_WORD = "sim"  # echoed when the prompt has no words at all
_FLOATS_PER_DIGEST = 8  # sha256 gives 32 bytes = eight 32-bit integers


def count_tokens(text: str) -> int:
    return len(text.split())


def generate_words(prompt: str, max_tokens: int) -> list[str]:
    """The prompt's words cycled to exactly `max_tokens` words."""
    source = prompt.split() or [FILLER_WORD]
    return [source[i % len(source)] for i in range(max_tokens)]


def message_text(content: Any) -> str:
    """The text of a chat message's content: a string, or a list of parts of which `text` ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def chat_tokens(messages: list[dict[str, Any]]) -> list[str]:
    """The prompt's tokens as the engine sees them after its chat template: every message's words in
    order, the first of each tagged with its role (so that the same words said by another role are other
    tokens, and the count stays the number of words)."""
    tokens: list[str] = []
    for message in messages:
        words = message_text(message.get("content")).split()
        if words:
            words[0] = f"{message.get('role')}:{words[0]}"
            tokens.extend(words)
    return tokens


def answer_tokens(words: list[str]) -> list[str]:
    """An answer's tokens as the next turn's prompt holds them (see chat_tokens)."""
    return [f"assistant:{words[0]}", *words[1:]] if words else []


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def embed(text: str) -> list[float]:
    """A unit-length vector derived from sha256 of the text: same text, same vector."""
    values: list[float] = []
    counter = 0
    while len(values) < EMBEDDING_DIMENSIONS:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(n / 2**31 - 1.0 for n in struct.unpack(f">{_FLOATS_PER_DIGEST}I", digest))
        counter += 1
    values = values[:EMBEDDING_DIMENSIONS]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]

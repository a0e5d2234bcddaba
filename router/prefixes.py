"""Cache-aware routing: which engine most likely holds a prompt's prefix in its KV cache.

vLLM keeps the KV blocks of prompts it computed and reuses the longest cached run of a new prompt's
leading blocks (automatic prefix caching): a multi-turn chat whose earlier turns are cached on an engine
starts generating there after computing only the new turn. The router cannot see engine caches, so it
remembers what it sent where, in blocks of the prompt's text:

- `Prefix`: a prompt cut into blocks of CHARS_PER_BLOCK characters (about the 16 tokens of a vLLM
  block), each named by a hash of its text and of the name before it, so one name stands for the
  whole prefix up to its block; and, for chats, an anchor: a stable hash of the conversation's opening
  (its messages up to the first user message), the same for every turn of the conversation.
- `PrefixIndex`: per instance, the names of the blocks routed there, the least recently used forgotten
  beyond `blocks_per_instance` (engines evict too, and this keeps the router's memory bounded).

The balancer (router/balancer.py) sends a prompt to the instance holding its longest routed prefix when
that prefix covers the conversation's opening (a shallower one, such as a system prompt many
conversations share, would pile every new conversation onto its first instance); otherwise to the
instance the conversation's anchor hashes to (rendezvous hashing: every turn, through every replica,
meets the same cache without shared state); and to the least-loaded instance when the preferred one is
overloaded.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

# About 16 tokens (vLLM's default block) of English text at about 4 characters per token.
CHARS_PER_BLOCK = 64
# What the router remembers per instance: 4096 blocks of 64 characters, about 64k tokens, the order of
# an 8B model's KV cache on a 24-48 GB GPU. Forgetting early only costs a hit; remembering too long
# sends a prompt where it is no longer cached, which the load bound limits.
BLOCKS_PER_INSTANCE = 4096
ANCHOR_DIGEST_BYTES = 8


@dataclass(frozen=True, slots=True)
class Prefix:
    # The chained name of each full block of the prompt's text (process-local hashes).
    names: tuple[int, ...]
    # A stable digest of the conversation's opening, or None (not a chat, or too short to be worth caching).
    anchor: bytes | None = None
    # The blocks a routed prefix must cover to say more than the anchor: up to and including the block
    # where the opening ends. A shallower match is a prefix shared by many conversations (a system prompt).
    anchor_blocks: int = 0


NO_PREFIX = Prefix(names=())


def block_names(text: str) -> tuple[int, ...]:
    """The chained name of each full block of `text` (a partial last block is not cached by engines)."""
    names, parent = [], 0
    for end in range(CHARS_PER_BLOCK, len(text) + 1, CHARS_PER_BLOCK):
        parent = hash((parent, text[end - CHARS_PER_BLOCK:end]))
        names.append(parent)
    return tuple(names)


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones are what the engine's template sees
        return "".join(part.get("text", "") for part in content if isinstance(part, dict)
                       and isinstance(part.get("text"), str))
    return ""


def chat_prefix(messages: Iterable[dict]) -> Prefix:
    """The blocks of a chat's messages in order (role and text, as a chat template lays them out), and
    its anchor: the messages up to the first user message, when they fill at least one block."""
    parts, anchor_end = [], None
    length = 0
    if sum(len(m["content"]) if isinstance(m.get("content"), str) else CHARS_PER_BLOCK for m in messages) \
            < CHARS_PER_BLOCK // 2:
        return NO_PREFIX  # far from a block: the common short prompt costs one pass, not a join
    for message in messages:
        role = message.get("role")
        piece = f"<{role}>\n{_content_text(message.get('content'))}\n"
        parts.append(piece)
        length += len(piece)
        if anchor_end is None and role == "user":
            anchor_end = length
    text = "".join(parts)
    if len(text) < CHARS_PER_BLOCK:
        return NO_PREFIX
    if anchor_end is None or anchor_end < CHARS_PER_BLOCK:
        return Prefix(names=block_names(text))
    anchor = hashlib.blake2b(text[:anchor_end].encode(), digest_size=ANCHOR_DIGEST_BYTES).digest()
    return Prefix(names=block_names(text), anchor=anchor, anchor_blocks=-(-anchor_end // CHARS_PER_BLOCK))


def text_prefix(prompt) -> Prefix:
    """A completion's prompt (the first, for a batch of prompts): its blocks, no anchor."""
    if isinstance(prompt, list):
        prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
    if not isinstance(prompt, str) or len(prompt) < CHARS_PER_BLOCK:
        return NO_PREFIX
    return Prefix(names=block_names(prompt))


class PrefixIndex:
    """What this router process sent where, block by block, bounded per instance."""

    def __init__(self, *, blocks_per_instance: int = BLOCKS_PER_INSTANCE) -> None:
        self.blocks_per_instance = blocks_per_instance
        # Block name -> the instances it was routed to.
        self._holders: dict[int, set[str]] = {}
        # Instance -> its block names, least recently routed first.
        self._blocks: dict[str, OrderedDict[int, None]] = {}

    def longest(self, names: tuple[int, ...], among: Collection[str]) -> tuple[set[str], int]:
        """The instances of `among` holding the longest run of `names`, and its length in blocks."""
        holders_of = self._holders.get
        best: set[str] | None = None
        depth = 0
        for name in names:
            holders = holders_of(name)
            if not holders:
                break
            common = (holders.intersection(among) if best is None else best & holders)
            if not common:
                break
            best, depth = common, depth + 1
        return best or set(), depth

    def record(self, instance_id: str, names: tuple[int, ...]) -> None:
        """`names` were routed to the instance: it holds them now, as its most recently used blocks."""
        if not names:
            return
        blocks = self._blocks.get(instance_id)
        if blocks is None:
            blocks = self._blocks[instance_id] = OrderedDict()
        holders = self._holders
        for name in names:
            if name in blocks:
                blocks.move_to_end(name)
            else:
                blocks[name] = None
                holders.setdefault(name, set()).add(instance_id)
        while len(blocks) > self.blocks_per_instance:
            self._drop(blocks.popitem(last=False)[0], instance_id)

    def retain(self, instance_ids: Collection[str]) -> None:
        """Forget the instances that left the routing table (their caches went with them)."""
        for instance_id in [i for i in self._blocks if i not in instance_ids]:
            for name in self._blocks.pop(instance_id):
                self._drop(name, instance_id)

    def size(self, instance_id: str) -> int:
        blocks = self._blocks.get(instance_id)
        return len(blocks) if blocks is not None else 0

    def _drop(self, name: int, instance_id: str) -> None:
        holders = self._holders.get(name)
        if holders is not None:
            holders.discard(instance_id)
            if not holders:
                del self._holders[name]

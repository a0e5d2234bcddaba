"""vLLM's automatic prefix caching, as far as time to first token goes.

vLLM splits a prompt into blocks of `block_size` tokens and names each full block by a hash of its tokens
and of the block before it, so one name stands for the whole prefix up to that block. A new request
reuses the longest run of leading blocks already in the KV cache and computes only the rest; the blocks
it computes join the cache, and so do the blocks its generated tokens fill (`extend`): a chat's next
turn, whose prompt is this one followed by the answer, finds both cached. Blocks that no running
request holds stay cached until their memory is needed, least recently used first. At least one prompt token is always computed (the engine needs the
last token's output), so a prompt made only of cached blocks still recomputes its last block.

The counters are vLLM's: `queries` and `hits` in tokens (`vllm:prefix_cache_queries_total`,
`vllm:prefix_cache_hits_total`).

Here a token is a word (see textgen.py). The cache holds at most `capacity_blocks` names, fewer while
running requests hold blocks of their own (a partial last block, their output), so its memory is
bounded whatever the traffic. A running request's cached blocks may be evicted under pressure, which
vLLM would not do (it would preempt instead): only later hits suffer, never the request itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

DEFAULT_BLOCK_SIZE = 16  # vLLM's default --block-size on CUDA
# Llama-3.1-8B in bf16 on one 24 GB L4 at --gpu-memory-utilization 0.9: about 4 GiB left for the KV
# cache at 128 KiB per token, about 32,768 tokens.
DEFAULT_KV_CACHE_BLOCKS = 2048


def block_hashes(tokens: Sequence[str], block_size: int) -> list[int]:
    """The chained name of each full block of `tokens` (a partial last block has none)."""
    names, parent = [], 0
    for end in range(block_size, len(tokens) + 1, block_size):
        parent = hash((parent, *tokens[end - block_size:end]))
        names.append(parent)
    return names


class PrefixCache:
    def __init__(self, *, block_size: int = DEFAULT_BLOCK_SIZE, capacity_blocks: int = DEFAULT_KV_CACHE_BLOCKS):
        if block_size < 1 or capacity_blocks < 1:
            raise ValueError("block_size and capacity_blocks must be at least 1")
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self.queries = 0  # prompt tokens looked up
        self.hits = 0  # of which found in the cache
        self.in_use = 0  # blocks that running requests hold
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def admit(self, tokens: Sequence[str], *, output_tokens: int = 0) -> tuple[int, int]:
        """Look up a new request's prompt, count it, and cache its full blocks: (cached tokens, blocks it
        holds besides them while it runs: its partial last block and its output's). Call `release(blocks)`
        when it ends."""
        names = block_hashes(tokens, self.block_size)
        # The last prompt token is always computed: a prompt of whole blocks can hit all but its last.
        usable = (len(tokens) - 1) // self.block_size
        cached = 0
        for name in names[:usable]:
            if name not in self._blocks:
                break
            cached += 1
        hit_tokens = cached * self.block_size
        self.queries += len(tokens)
        self.hits += hit_tokens
        held = self.blocks_for(len(tokens) + output_tokens) - len(names)
        self.in_use += held
        blocks = self._blocks
        for name in names:
            blocks[name] = None
            blocks.move_to_end(name)
        # Whatever running requests hold besides cached blocks is not free to cache: cached blocks make
        # room, least recently used first (the prompt just cached is the most recent).
        room = max(self.capacity_blocks - self.in_use, 0)
        while len(blocks) > room:
            blocks.popitem(last=False)
        return hit_tokens, held

    def extend(self, tokens: Sequence[str]) -> None:
        """A request generated the end of `tokens` (its prompt, then its output as the next turn's prompt
        will show it): its full blocks are cached too."""
        blocks = self._blocks
        for name in block_hashes(tokens, self.block_size):
            blocks[name] = None
            blocks.move_to_end(name)
        room = max(self.capacity_blocks - self.in_use, 0)
        while len(blocks) > room:
            blocks.popitem(last=False)

    def release(self, blocks: int) -> None:
        self.in_use = max(0, self.in_use - blocks)

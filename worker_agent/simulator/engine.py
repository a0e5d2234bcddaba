"""The simulated engine: admission through the scheduler, prefill with prefix caching, timed token
emission, and accounting.

Time to first token = the fixed overhead (`ttft_s`) + the prompt tokens the prefix cache did not hold /
the prefill rate. Prefill is compute-bound, so the prefills of concurrent requests take turns (one after
another at the full rate, as vLLM's token budget per step shares the GPU): a burst of long prompts on one
engine waits, and a cache hit saves its own time and the time of every request behind it.
"""

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence

from .config import SimConfig
from .prefix_cache import PrefixCache
from .scheduler import Scheduler
from .stats import EngineStats

# Called once per token with (choice index, position of the token within its choice, the word).
TokenSink = Callable[[int, int, str], Awaitable[None]]


class SimEngine:
    """State shared by the simulator's handlers; everything runs on one event loop."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.scheduler = Scheduler(config.max_num_seqs)
        self.stats = EngineStats()
        self.cache = PrefixCache(block_size=config.block_size, capacity_blocks=config.kv_cache_blocks)
        self.failed = False  # set by POST /sim/fail, cleared by POST /sim/recover
        # When the prefill of the last admitted request ends (event-loop time).
        self._prefill_free_at = 0.0

    @property
    def dead(self) -> bool:
        dead_file = self.config.dead_file
        return self.failed or (dead_file is not None and os.path.exists(dead_file))

    def kv_cache_usage(self) -> float:
        # No real KV cache: the share of sequence slots in use behaves the same way under load.
        return min(self.scheduler.running / self.scheduler.max_num_seqs, 1.0)

    def render_metrics(self) -> str:
        return self.stats.render(
            model_name=self.config.served_model_names[0],
            running=self.scheduler.running,
            waiting=self.scheduler.waiting,
            kv_cache_usage=self.kv_cache_usage(),
            prefix_cache_queries=self.cache.queries,
            prefix_cache_hits=self.cache.hits,
        )

    def prefill_seconds(self, prompts: Sequence[Sequence[str]], prompt_tokens: int, outputs: Sequence[int],
                        now: float) -> tuple[float, int]:
        """Look the prompts up in the prefix cache and book their prefill: the seconds from `now` until it
        is done (waiting for the prefills booked before included), and the KV blocks held until the
        request ends. `outputs`: the tokens each prompt will generate."""
        config = self.config
        uncached, held = prompt_tokens, 0
        if config.enable_prefix_caching:
            for index, tokens in enumerate(prompts):
                hit, blocks = self.cache.admit(tokens, output_tokens=outputs[index] if index < len(outputs) else 0)
                uncached -= hit
                held += blocks
        rate = config.prefill_tokens_per_second
        if rate <= 0 or uncached <= 0:
            return 0.0, held
        done = max(now, self._prefill_free_at) + uncached / rate
        self._prefill_free_at = done
        return done - now, held

    async def generate(
        self, choices: list[list[str]], *, prompt_tokens: int, prompts: Sequence[Sequence[str]] = (),
        continuations: Sequence[Sequence[str]] = (), on_token: TokenSink | None = None,
    ) -> None:
        """Wait for a slot, prefill `prompts` (their tokens; `prompt_tokens` counts them), then produce
        every choice's words with the configured timing. `continuations`: each prompt's output as tokens
        (as a chat's next turn will send it), cached after its prompt once generated whole.

        Without `on_token` (non-streaming) the whole delay is one sleep, which keeps the zero-delay
        path free of per-token work. The request is accounted for even when the client goes away.
        """
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        await self.scheduler.acquire()
        admitted = loop.time()
        config = self.config
        total = sum(len(words) for words in choices)
        produced = 0
        prefill_s, held = self.prefill_seconds(prompts, prompt_tokens, [len(words) for words in choices], admitted)
        first_delay = prefill_s + config.ttft_s
        first_token_at = admitted + first_delay
        finish_reason = "length"
        try:
            if on_token is None:
                delay = first_delay + config.inter_token_delay_s * max(total - 1, 0)
                if delay > 0:
                    await asyncio.sleep(delay)
                produced = total
            else:
                if first_delay > 0:
                    await asyncio.sleep(first_delay)
                for index, words in enumerate(choices):
                    for position, word in enumerate(words):
                        # Read the delay each time: /sim/config may change it mid-stream.
                        if produced and config.inter_token_delay_s > 0:
                            await asyncio.sleep(config.inter_token_delay_s)
                        await on_token(index, position, word)
                        if produced == 0:
                            first_token_at = loop.time()
                        produced += 1
        except (asyncio.CancelledError, ConnectionError):
            finish_reason = "abort"
            raise
        else:
            if config.enable_prefix_caching:
                for prompt, continuation in zip(prompts, continuations, strict=False):
                    self.cache.extend([*prompt, *continuation])
        finally:
            self.scheduler.release()
            self.cache.release(held)
            finished = loop.time()
            self.stats.record(
                prompt_tokens=prompt_tokens,
                generation_tokens=produced,
                finish_reason=finish_reason,
                queue_s=admitted - arrived,
                ttft_s=first_token_at - arrived,
                e2e_s=finished - arrived,
            )

"""The simulated engine: admission through the scheduler, timed token emission, and accounting."""

import asyncio
import os
from collections.abc import Awaitable, Callable

from .config import SimConfig
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
        self.failed = False  # set by POST /sim/fail, cleared by POST /sim/recover

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
        )

    async def generate(
        self, choices: list[list[str]], *, prompt_tokens: int, on_token: TokenSink | None = None
    ) -> None:
        """Wait for a slot, then produce every choice's words with the configured timing.

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
        first_token_at = admitted + config.ttft_s
        finish_reason = "length"
        try:
            if on_token is None:
                delay = config.ttft_s + config.inter_token_delay_s * max(total - 1, 0)
                if delay > 0:
                    await asyncio.sleep(delay)
                produced = total
            else:
                if config.ttft_s > 0:
                    await asyncio.sleep(config.ttft_s)
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
        finally:
            self.scheduler.release()
            finished = loop.time()
            self.stats.record(
                prompt_tokens=prompt_tokens,
                generation_tokens=produced,
                finish_reason=finish_reason,
                queue_s=admitted - arrived,
                ttft_s=first_token_at - arrived,
                e2e_s=finished - arrived,
            )

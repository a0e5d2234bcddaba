"""At most `max_num_seqs` requests generate at once; the rest wait in FIFO order, as in vLLM."""

import asyncio
from collections import deque


class Scheduler:
    """A resizable FIFO semaphore whose queue length is the `vllm:num_requests_waiting` gauge."""

    def __init__(self, max_num_seqs: int) -> None:
        self.max_num_seqs = max_num_seqs
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        # The fast path keeps the zero-delay benchmark upstream free of future allocations.
        if self.running < self.max_num_seqs and not self._waiters:
            self.running += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as the client went away: give it to the next one.
                self.release()
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.running -= 1
        self._admit()

    def resize(self, max_num_seqs: int) -> None:
        self.max_num_seqs = max_num_seqs
        self._admit()

    def _admit(self) -> None:
        while self._waiters and self.running < self.max_num_seqs:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.running += 1
                waiter.set_result(None)

"""Dynamic batching like Triton's: gather requests up to a batch size within a queue delay."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np


class Batcher:
    """Run ``fn`` on concatenated request tensors; route each caller its own rows.

    ``max_delay`` 0 turns batching off: every request runs alone, at once.
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], max_batch: int, max_delay: float,
                 executor: ThreadPoolExecutor, observe: Callable[[int, float], None] = lambda b, q: None):
        self.fn, self.max_batch, self.max_delay = fn, max_batch, max_delay
        self.executor, self.observe = executor, observe
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def submit(self, x: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self.max_delay <= 0 or len(x) >= self.max_batch:
            self.observe(len(x), 0.0)
            return await loop.run_in_executor(self.executor, self.fn, x)
        if self.task is None:
            self.queue = asyncio.Queue()
            self.task = loop.create_task(self._run())
        future = loop.create_future()
        await self.queue.put((x, future, time.perf_counter()))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            batch, rows = [first], len(first[0])
            deadline = loop.time() + self.max_delay
            while rows < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                rows += len(item[0])
            started = time.perf_counter()
            for _, _, queued in batch:
                self.observe(0, started - queued)
            self.observe(rows, -1.0)
            try:
                x = np.concatenate([b[0] for b in batch]) if len(batch) > 1 else batch[0][0]
                y = await loop.run_in_executor(self.executor, self.fn, x)
            except Exception as exc:  # every caller of the batch learns what went wrong
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for part, future, _ in batch:
                if not future.done():
                    future.set_result(y[start:start + len(part)])
                start += len(part)

    async def close(self) -> None:
        if self.task is not None:
            while self.queue is not None and not self.queue.empty():
                await asyncio.sleep(0.001)  # let queued requests finish before stopping
            self.task.cancel()

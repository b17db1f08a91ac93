"""Dynamic batching like Triton's: gather requests up to a batch size within a queue delay.

Adaptive: a request that arrives alone runs at once; requests that queue up while the
workers are busy run together, and the batcher waits up to ``max_delay`` for more only when
the previous batch showed concurrency. Models whose call takes under ``INLINE_SECONDS`` run
on the event loop itself: the hop to a worker thread would cost more than the call.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

INLINE_SECONDS = 200e-6
# after each model call: rows, requests, and the nanoseconds spent joining their inputs, in the
# call, and splitting its output (Triton's compute_input, compute_infer, compute_output)
Executed = Callable[[int, int, int, int, int], None]


class Batcher:
    """Run ``fn`` on concatenated request tensors; route each caller its own rows.

    ``max_delay`` 0 turns batching off: every request runs alone, at once.
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], max_batch: int, max_delay: float,
                 executor: ThreadPoolExecutor, on_execute: Executed = lambda *times: None,
                 on_queue: Callable[[float], None] = lambda seconds: None, workers: int = 2,
                 inline: bool = False):
        self.fn, self.max_batch, self.max_delay = fn, max_batch, max_delay
        self.executor, self.inline, self.workers = executor, inline, workers
        self.on_execute, self.on_queue = on_execute, on_queue
        self.running = 0  # batches handed to a worker and not yet answered
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.slots: asyncio.Semaphore | None = None
        self.last_batch = 1

    def _timed(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        start = time.perf_counter_ns()  # timed where it runs: the hop to a thread is not in it
        y = self.fn(x)
        return y, time.perf_counter_ns() - start

    async def _call(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        if self.inline and len(x) <= self.max_batch:  # a big request must not block the loop
            return self._timed(x)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._timed, x)

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """Scores of ``x`` (``[rows, ...]``): run at once when batching is off or ``x`` fills a
        batch, else queued to be joined with other requests within ``max_delay``."""
        if self.max_delay <= 0 or len(x) >= self.max_batch:
            self.on_queue(0.0)
            y, ns = await self._call(x)
            self.on_execute(len(x), 1, 0, ns, 0)
            return y
        if self.task is None:
            self.queue, self.slots = asyncio.Queue(), asyncio.Semaphore(self.workers)
            self.task = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((x, future, time.perf_counter()))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            await self.slots.acquire()  # requests keep queueing while every worker is busy
            batch, rows = [first], len(first[0])
            while rows < self.max_batch and not self.queue.empty():
                item = self.queue.get_nowait()
                batch.append(item)
                rows += len(item[0])
            if rows < self.max_batch and self.last_batch > 1:
                deadline = loop.time() + self.max_delay
                while rows < self.max_batch and (timeout := deadline - loop.time()) > 0:
                    try:
                        item = await asyncio.wait_for(self.queue.get(), timeout)
                    except asyncio.TimeoutError:
                        break
                    batch.append(item)
                    rows += len(item[0])
            self.last_batch = len(batch)
            started = time.perf_counter()
            for _, _, queued in batch:
                self.on_queue(started - queued)
            self.running += 1
            if self.inline and rows <= self.max_batch:
                await self._execute(batch)
            else:
                loop.create_task(self._execute(batch))

    async def _execute(self, batch) -> None:
        joining = time.perf_counter_ns()
        try:
            x = np.concatenate([b[0] for b in batch]) if len(batch) > 1 else batch[0][0]
            joined = time.perf_counter_ns()
            y, ns = await self._call(x)
        except Exception as exc:  # every caller of the batch learns what went wrong
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        finally:
            self.running -= 1
            self.slots.release()
        splitting, start = time.perf_counter_ns(), 0
        for part, future, _ in batch:
            if not future.done():
                future.set_result(y[start:start + len(part)])
            start += len(part)
        self.on_execute(len(x), len(batch), joined - joining, ns,
                        time.perf_counter_ns() - splitting)

    async def close(self) -> None:
        """Let queued and running batches finish, then stop the batching task."""
        if self.task is not None:
            while not self.queue.empty() or self.running:
                await asyncio.sleep(0.001)  # let queued and running batches finish
            self.task.cancel()

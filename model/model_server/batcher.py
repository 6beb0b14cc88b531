"""Merges concurrent invocations into shared model batches, run by one worker thread on one model copy.

Interactive work goes first. A bulk invocation (a job chunk, marked by the caller) is cut into slices of at most
`bulk_slice` texts; whenever the model frees up, waiting interactive work runs before the next bulk slice, so an
interactive request waits for at most one slice, never for a whole chunk. Bulk slices of different invocations take
turns, so a small job's chunk is not stuck behind a large job's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from model_server.embedder import Embedder, EmbeddingResult


@dataclass
class _Job:
    texts: list[str]
    normalize: list[bool]  # one flag per text
    future: asyncio.Future[EmbeddingResult]


@dataclass
class BatcherStats:
    model_calls: int = 0
    jobs: int = 0
    texts: int = 0


class MicroBatcher:
    """While the model is busy, new jobs wait; when it frees up, everything waiting goes in together."""

    def __init__(
        self,
        embedder: Embedder,
        max_tokens: int,
        max_batch: int,
        merge_window_ms: int,
        max_texts: int,
        bulk_slice: int | None = None,
    ) -> None:
        self.embedder = embedder
        self.max_tokens = max_tokens
        self.max_batch = max_batch
        self.merge_window = merge_window_ms / 1000
        self.max_texts = max_texts
        self.bulk_slice = bulk_slice or max_batch
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        # One queue of slices per bulk invocation, served in turn.
        self._bulk: deque[deque[_Job]] = deque()
        self._work = asyncio.Event()
        # A single thread: one model copy, and the event loop stays free to accept requests.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def embed(
        self, texts: list[str], normalize: bool | Sequence[bool] | None = None, bulk: bool = False
    ) -> EmbeddingResult:
        """`normalize`: one flag, one per text, or None for the model's own setting; jobs that differ still merge.
        `bulk`: run after any interactive work, slice by slice."""
        flags = self.embedder.normalize_flags(normalize, len(texts))
        self.start()
        loop = asyncio.get_running_loop()
        if not bulk:
            future: asyncio.Future[EmbeddingResult] = loop.create_future()
            await self._queue.put(_Job(texts, flags, future))
            self._work.set()
            return await future
        # Sliced in length order, as one big call would batch them: similar lengths pad little.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        slices: deque[_Job] = deque()
        for start in range(0, len(order), self.bulk_slice):
            picked = order[start : start + self.bulk_slice]
            slices.append(_Job([texts[i] for i in picked], [flags[i] for i in picked], loop.create_future()))
        futures = [job.future for job in slices]
        self._bulk.append(slices)
        self._work.set()
        parts = await asyncio.gather(*futures)
        vectors = np.concatenate([part.vectors for part in parts])
        truncated = [flag for part in parts for flag in part.truncated]
        restored = np.empty_like(vectors)
        restored[order] = vectors
        back = [False] * len(texts)
        for position, index in enumerate(order):
            back[index] = truncated[position]
        return EmbeddingResult(restored, back)

    async def _next(self) -> list[_Job]:
        """Interactive jobs waiting (merged), else one bulk slice of the next bulk invocation in turn."""
        while True:
            if not self._queue.empty():
                if self.merge_window:
                    await asyncio.sleep(self.merge_window)
                jobs = [self._queue.get_nowait()]
                total = len(jobs[0].texts)
                while not self._queue.empty() and total < self.max_texts:
                    job = self._queue.get_nowait()
                    jobs.append(job)
                    total += len(job.texts)
                return jobs
            if self._bulk:
                slices = self._bulk.popleft()
                job = slices.popleft()
                if slices:
                    self._bulk.append(slices)  # its next slice waits for the other invocations' turns
                return [job]
            self._work.clear()
            await self._work.wait()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._next()
            texts = [t for job in jobs for t in job.texts]
            flags = [flag for job in jobs for flag in job.normalize]
            try:
                result = await loop.run_in_executor(
                    self._executor, self.embedder.embed, texts, self.max_tokens, self.max_batch, flags
                )
            except Exception as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self.stats.model_calls += 1
            self.stats.jobs += len(jobs)
            self.stats.texts += len(texts)
            start = 0
            for job in jobs:
                end = start + len(job.texts)
                if not job.future.done():
                    job.future.set_result(
                        EmbeddingResult(np.ascontiguousarray(result.vectors[start:end]), result.truncated[start:end])
                    )
                start = end

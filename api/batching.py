"""Dynamic batching, as TF Serving and Triton do it: concurrent requests share one model call.

Requests queue on the event loop; one task takes what is queued (waiting at most
``max_delay_s`` for company when the model is idle), calls the model on a thread of
its own, and answers each request. While a call runs, the next batch forms, so under
load batches fill up without any added delay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from models.prediction import ErrorCode, ImageError

log = logging.getLogger("imgclf.api.batching")

Predict = Callable[[Sequence[bytes]], list[np.ndarray | ImageError]]


@dataclass
class _Pending:
    image: bytes
    future: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    def __init__(
        self,
        predict: Predict,
        name: str,
        max_batch_size: int = 32,
        max_delay_s: float = 0.002,
        on_batch: Callable[[int, float], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ):
        self._predict = predict
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._on_batch = on_batch or (lambda size, seconds: None)
        self._on_queue = on_queue or (lambda delta: None)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"model-{name}")
        self._task: asyncio.Task | None = None
        self._busy = False

    @property
    def idle(self) -> bool:
        return self._queue.empty() and not self._busy

    async def predict(self, image: bytes) -> np.ndarray:
        """One image's probabilities; raises ImageError for an image the model cannot take."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(image, future))
        self._on_queue(1)
        return await future

    async def close(self) -> None:
        """Answers everything queued, then stops."""
        while not self.idle:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    def _take(self, batch: list[_Pending]) -> None:
        while len(batch) < self.max_batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            self._busy = True
            self._take(batch)
            if len(batch) < self.max_batch_size and self.max_delay_s > 0:
                await asyncio.sleep(self.max_delay_s)
                self._take(batch)
            self._on_queue(-len(batch))
            live = [p for p in batch if not p.future.done()]  # a client that went away
            if live:
                started = time.monotonic()
                try:
                    outputs = await loop.run_in_executor(self._executor, self._predict, [p.image for p in live])
                except Exception as e:  # the model itself failed: every request in the batch hears it
                    log.exception("model %s failed on a batch of %d", self.name, len(live))
                    outputs = [ImageError(ErrorCode.INFERENCE_ERROR, f"model call failed: {type(e).__name__}")] * len(
                        live
                    )
                self._on_batch(len(live), time.monotonic() - started)
                for pending, output in zip(live, outputs, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(output, ImageError):
                        pending.future.set_exception(output)
                    else:
                        pending.future.set_result(output)
            self._busy = False

"""DynamicBatcher: concurrent requests become one model call, and one bad image fails alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from api.batching import DynamicBatcher
from models.prediction import ErrorCode, ImageError


class Recorder:
    """A model stand-in that answers len(image) and records the batches it was called with."""

    def __init__(self, fail_on: bytes | None = None, raise_on_call: bool = False):
        self.batches: list[list[bytes]] = []
        self.fail_on = fail_on
        self.raise_on_call = raise_on_call

    def __call__(self, images):
        self.batches.append(list(images))
        if self.raise_on_call:
            raise RuntimeError("the model broke")
        return [
            ImageError(ErrorCode.DECODE_ERROR, "bad") if image == self.fail_on else np.array([len(image)])
            for image in images
        ]


def _run(batcher: DynamicBatcher, images: list[bytes]):
    async def go():
        try:
            return await asyncio.gather(*(batcher.predict(i) for i in images), return_exceptions=True)
        finally:
            await batcher.close()

    return asyncio.run(go())


def test_concurrent_requests_become_one_call():
    model = Recorder()
    results = _run(DynamicBatcher(model, "m", max_batch_size=32, max_delay_s=0.05), [b"x" * n for n in range(1, 11)])
    assert [len(b) for b in model.batches] == [10]
    assert [int(r[0]) for r in results] == list(range(1, 11))


def test_batches_never_exceed_the_maximum_size():
    model = Recorder()
    _run(DynamicBatcher(model, "m", max_batch_size=4, max_delay_s=0.05), [b"x"] * 10)
    assert [len(b) for b in model.batches] == [4, 4, 2]


def test_a_bad_image_fails_only_its_own_request():
    model = Recorder(fail_on=b"bad")
    results = _run(DynamicBatcher(model, "m", max_delay_s=0.05), [b"ok", b"bad", b"fine"])
    assert isinstance(results[1], ImageError) and results[1].code is ErrorCode.DECODE_ERROR
    assert int(results[0][0]) == 2 and int(results[2][0]) == 4


def test_a_failing_model_call_answers_everyone_and_the_batcher_goes_on():
    model = Recorder(raise_on_call=True)
    batcher = DynamicBatcher(model, "m", max_delay_s=0.01)

    async def go():
        first = await asyncio.gather(batcher.predict(b"a"), batcher.predict(b"b"), return_exceptions=True)
        model.raise_on_call = False
        second = await batcher.predict(b"abc")
        await batcher.close()
        return first, second

    first, second = asyncio.run(go())
    assert all(isinstance(e, ImageError) and e.code is ErrorCode.INFERENCE_ERROR for e in first)
    assert int(second[0]) == 3


def test_close_answers_what_is_queued_first():
    model = Recorder()
    batcher = DynamicBatcher(model, "m", max_batch_size=2, max_delay_s=0.0)

    async def go():
        pending = [asyncio.ensure_future(batcher.predict(b"x")) for _ in range(5)]
        await asyncio.sleep(0)
        await batcher.close()
        return [p.result() for p in pending]

    assert len(asyncio.run(go())) == 5


@pytest.mark.parametrize("delay", [0.0, 0.01])
def test_a_lone_request_is_answered_promptly(delay):
    model = Recorder()
    results = _run(DynamicBatcher(model, "m", max_delay_s=delay), [b"abc"])
    assert int(results[0][0]) == 3 and model.batches == [[b"abc"]]

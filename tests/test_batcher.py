"""Dynamic batching (bench/serve/batcher.py): callers' windows share forward passes of at most max_batch windows, a
caller's windows stay together and in order, and one caller's bad input fails only that caller."""
import asyncio

import numpy as np
import pytest

from bench.serve.batcher import Batcher


def run(coro):
    return asyncio.run(coro)


def test_callers_share_bounded_batches_and_get_their_own_scores():
    forwards: list[int] = []

    def score(windows):
        forwards.append(len(windows))
        return [float(w[0]) for w in windows]

    async def main():
        b = Batcher(score, max_batch=8, wait_s=0.05)
        b.start()
        try:
            calls = [b.score([np.array([k + 0.5 * j]) for j in range(1 + k % 3)]) for k in range(12)]
            return await asyncio.gather(*calls)
        finally:
            await b.stop()

    results = run(main())
    for k, r in enumerate(results):
        assert r == [k + 0.5 * j for j in range(1 + k % 3)]          # each caller's own scores, in order
    assert sum(forwards) == sum(1 + k % 3 for k in range(12)) == 24
    assert max(forwards) <= 8 and len(forwards) <= 5                 # shared: 24 windows in a few passes


def test_a_caller_larger_than_the_batch_goes_alone():
    forwards: list[int] = []

    def score(windows):
        forwards.append(len(windows))
        return [0.0] * len(windows)

    async def main():
        b = Batcher(score, max_batch=4, wait_s=0.0)
        b.start()
        try:
            return await b.score([np.zeros(1)] * 10)
        finally:
            await b.stop()

    assert run(main()) == [0.0] * 10 and forwards == [10]


def test_one_callers_bad_input_fails_only_that_caller():
    def score(windows):
        if any(np.isnan(w).any() for w in windows):
            raise ValueError("a NaN window")
        return [float(w.sum()) for w in windows]

    async def main():
        b = Batcher(score, max_batch=16, wait_s=0.05)
        b.start()
        try:
            return await asyncio.gather(b.score([np.ones(2)]), b.score([np.array([np.nan])]), b.score([np.ones(3)]),
                                        return_exceptions=True)
        finally:
            await b.stop()

    good1, bad, good2 = run(main())
    assert good1 == [2.0] and good2 == [3.0]
    assert isinstance(bad, ValueError) and "NaN window" in str(bad)


def test_options_are_checked():
    with pytest.raises(ValueError, match="max_batch >= 1"):
        Batcher(lambda w: w, max_batch=0, wait_s=0.0)

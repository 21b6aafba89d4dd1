"""The one retry policy (store reads and the acquisition HTTP client alike): bounded attempts in
a row, a count that progress starts again, exponential backoff jittered 0.5x to 1.5x and capped,
and a Retry-After that wins over the backoff but never over the cap."""

from __future__ import annotations

import random

import pytest

from fmaprep.storage.retrying import STORE_READS, RetryBudget, RetryPolicy


def test_backoff_doubles_within_its_jitter_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(attempts=9, base=1.0, cap=10.0)
    rng = random.Random(7)
    for failures, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        waits = [policy.delay(failures, rng=rng) for _ in range(200)]
        assert all(0.5 * nominal <= w <= 1.5 * nominal for w in waits), failures
        assert max(waits) - min(waits) > 0.5 * nominal  # jittered, not one value


def test_retry_after_wins_over_the_backoff_but_not_over_the_cap() -> None:
    policy = RetryPolicy(attempts=3, base=1.0, cap=30.0)
    assert policy.delay(1, retry_after=9.0) >= 9.0
    assert policy.delay(1, retry_after=3600.0) == 30.0
    assert policy.delay(1, retry_after=0.0) <= 1.5  # a shorter Retry-After: the backoff stands


def test_the_budget_counts_failures_in_a_row_and_progress_starts_it_again() -> None:
    budget = RetryBudget(RetryPolicy(attempts=3, base=0.0, cap=0.0))
    assert budget.failed() and budget.failed()  # 2 of 3
    assert budget.failed(progressed=True) and budget.failures == 0  # bytes came: not a failure
    assert budget.failed() and budget.failed() and not budget.failed()  # 3 in a row: spent
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0, base=1.0, cap=1.0)


def test_store_reads_wait_a_few_seconds_at_most() -> None:
    waits = [STORE_READS.delay(n) for n in range(1, STORE_READS.attempts) for _ in range(50)]
    assert min(waits) > 0.0 and max(waits) <= 1.5 * STORE_READS.cap

"""The examples in examples/ run and print what the README says they do."""

from __future__ import annotations

import pytest

from examples import batch_retry, diamond, map_reduce


async def test_given_the_map_reduce_example_then_it_merges_the_chunks_that_completed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await map_reduce.main() == {"the": 5, "fox": 3, "dog": 3}
    assert "chunk 3 is unreadable" in capsys.readouterr().out


async def test_given_the_diamond_example_then_results_flow_through_both_branches() -> None:
    assert await diamond.main() == ["web-beach.jpg (1600 px)", "thumb-beach.jpg (320 px)"]


async def test_given_the_batch_example_then_transient_failures_are_retried_and_one_item_fails() -> None:
    batch_retry.attempts.clear()
    result = await batch_retry.main()
    assert result["ok"] == 19 and result["failed"] == {"13": "item 13: 404 not found"}
    assert result["retried"] == [3, 10, 17]

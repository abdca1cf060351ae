"""The ingest benchmark runs end to end and every measured target is met (slow: about a minute)."""

from __future__ import annotations

import pytest

from conftest import SHARED_DATA
from reshoot.bench import bench_ingest


@pytest.mark.slow
def test_bench_ingest_meets_its_targets(tmp_path):
    rows = bench_ingest(SHARED_DATA, tmp_path)
    assert len(rows) >= 3
    failed = [r for r in rows if r["pass"] is False]
    assert not failed, failed
    sync = [r for r in rows if r["benchmark"].startswith("audio sync, synthetic")]
    assert len(sync) == 2 and all(r["pass"] for r in sync)

"""The ingest benchmark runs end to end and every measured target is met (slow: about a minute)."""

from __future__ import annotations

import pytest

from conftest import SHARED_DATA
from reshoot_bench import bench_ingest


@pytest.mark.slow
def test_bench_ingest_meets_its_targets(tmp_path):
    rows = bench_ingest(SHARED_DATA, tmp_path)
    assert len(rows) >= 3
    failed = [r for r in rows if r["pass"] is False]
    assert not failed, failed
    sync = [r for r in rows if r["benchmark"].startswith("audio sync, synthetic")]
    assert len(sync) == 2 and all(r["pass"] for r in sync)


def test_rows_markdown_is_one_table_row_per_benchmark():
    from reshoot_bench import rows_markdown

    rows = [{"benchmark": "ingest: sync | audio", "result": "0.02 ms", "target": "< 1 ms", "pass": True, "detail": "a"},
            {"benchmark": "raster: 5k", "result": "0.08 s", "pass": None},
            {"benchmark": "shot: guide", "result": "line\nbreak", "target": "", "pass": False, "detail": ""}]
    lines = rows_markdown(rows, "reshoot bench all").splitlines()
    assert lines[0] == "## reshoot bench all" and lines[2] == "| benchmark | result | target | ok | detail |"
    assert lines[4:] == ["| ingest: sync \\| audio | 0.02 ms | < 1 ms | yes | a |", "| raster: 5k | 0.08 s |  | - |  |",
                         "| shot: guide | line break |  | NO |  |"]


def test_shot_rows_carry_the_region_figures_and_the_verdict():
    from reshoot_bench.shot import _regions, _verdict

    scores = {"psnr_db": 24.0, "set_psnr_db": 26.5, "actor_psnr_db": 21.25}
    assert _regions(scores) == "24.00 dB (set 26.50 dB, actor 21.25 dB)"
    assert _verdict(scores) == ("needs fixes (whole frame 24.00 dB < 25 dB; set 26.50 dB < 27 dB; "
                                "actor 21.25 dB < 22 dB)")
    assert _regions({**scores, "actor_psnr_db": None}).endswith("actor -)")


def test_layout_rows_pass_only_when_guide_and_refined_shot_reach_22_db(tmp_path):
    from reshoot_bench.layouts import LAYOUTS, layout_row

    good = {"psnr_db": 25.4, "set_psnr_db": 25.5, "actor_psnr_db": 21.0, "ssim": 0.84}
    row = layout_row("3 cameras, seed 1, 320x180", {"guide": good, "refine": {**good, "psnr_db": 25.5}}, 400.2, 300.4,
                     tmp_path / "report.html")
    assert row["pass"] is True
    assert row["result"].startswith("guide 25.40 dB (set 25.50 dB, actor 21.00 dB), SSIM 0.840; refined 25.50 dB")
    assert "needs fixes (" in row["result"] and row["detail"].startswith("the whole job 400 s (training 300 s)")
    low = layout_row("x", {"guide": {**good, "psnr_db": 21.9}, "refine": good}, 1, None, tmp_path / "r.html")
    assert low["pass"] is False and "training" not in low["detail"]
    # shoots nobody tuned on: none is the demo's (4 cameras, seed 0), one is twice its size
    assert all((c.n_cameras, c.seed) != (4, 0) for _, _, c in LAYOUTS)
    assert any((c.width, c.height) == (640, 360) for _, _, c in LAYOUTS)

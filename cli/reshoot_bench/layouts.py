"""Benchmark of the defaults on sample shoots nobody tuned them on: the demo's whole job (``run_demo``: sync, register,
reconstruct, the overhead path, guide, classical refine, export) on other layouts, seeds and sizes, each shot scored
against its hidden overhead camera over the whole frame, the set and the actor, with ``reshoot eval``'s verdict.

About 40 minutes on 2 cores: two 320x180 shoots of about 7 minutes each, and a 640x360 one trained at its full size
(about 20 minutes)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from reshoot.pipeline.demo import run_demo
from reshoot.sample import SampleConfig
from reshoot.workspace import StageError
from reshoot_bench.shot import _regions, _verdict

#: The shoots: (name, folder, sample). None of them is the demo's (4 cameras, seed 0, 320x180).
LAYOUTS: tuple[tuple[str, str, SampleConfig], ...] = (
    ("3 cameras, seed 1, 320x180", "layout-3cam-seed1", SampleConfig(n_cameras=3, seed=1)),
    ("5 cameras, seed 2, 320x180", "layout-5cam-seed2", SampleConfig(n_cameras=5, seed=2)),
    ("4 cameras, seed 3, 640x360", "layout-4cam-seed3-640", SampleConfig(seed=3, width=640, height=360)),
)
OVERALL_DB = 22.0
"""Each shoot's guide frames and refined shot should score at least this over the whole frame."""


def bench_layouts(work: Path, layouts: tuple[tuple[str, str, SampleConfig], ...] = LAYOUTS,
                  preset: str = "default") -> list[dict[str, Any]]:
    """One row per shoot of ``layouts``, the job run in ``work/<folder>`` with ``preset``'s training."""
    rows = []
    for name, folder, sample in layouts:
        start = time.perf_counter()
        try:
            result = run_demo(Path(work) / folder, preset, sample=sample)
        except (StageError, ValueError, RuntimeError) as exc:  # a row that says why, not the whole benchmark lost
            rows.append({"benchmark": f"sample shoot {name}: the overhead shot", "result": f"failed: {exc}"[:300],
                         "target": f">= {OVERALL_DB:g} dB overall", "pass": False})
            continue
        training = result.later["reconstruct"].manifest["timings_s"].get("training")
        rows.append(layout_row(name, result.shot_check, time.perf_counter() - start, training, result.report))
    return rows


def layout_row(name: str, shots: dict[str, dict[str, Any]], seconds: float, training_s: float | None,
               report: Path) -> dict[str, Any]:
    """The row of one shoot from its ``shot_check`` ({"guide": scores, "refine": scores})."""
    guide, refined = shots["guide"], shots["refine"]
    return {"benchmark": f"sample shoot {name}, defaults untuned on it: the overhead shot vs its hidden camera",
            "result": f"guide {_regions(guide)}, SSIM {guide['ssim']:.3f}; refined {_regions(refined)}, SSIM "
                      f"{refined['ssim']:.3f}: {_verdict(refined)}",
            "target": f">= {OVERALL_DB:g} dB overall", "pass": bool(min(guide["psnr_db"], refined["psnr_db"]) >= OVERALL_DB),
            "detail": f"the whole job {seconds:.0f} s" + (f" (training {training_s:.0f} s)" if training_s else "")
                      + f"; {report}"}

"""Benchmark of the missing angle on the synthetic shoot: guide render speed, and the guide frames' and the refined
shot's PSNR/SSIM (over the whole frame, the set and the actor, by the sample's ground-truth actor masks), flicker and
``reshoot eval``'s verdict against the ground-truth overhead camera (never in the footage), with the overhead path
rebuilt from that camera's pose."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from reshoot.evaluation.report import db_text, shot_verdict, ssim_text
from reshoot.evaluation.scores import sample_truth_view, score_shot, truth_view_path_config
from reshoot.sample import PRESETS, make_sample_shoot
from reshoot.stages.guide import GuideConfig, run_guide
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages.path import run_path
from reshoot.stages.reconstruct import ReconstructConfig, run_reconstruct
from reshoot.stages.refine import RefineConfig, run_refine
from reshoot.stages.register import RegisterConfig, run_register
from reshoot.workspace import Workspace


def bench_shot(work: Path, steps: int | None = None) -> list[dict[str, Any]]:
    """Guide frames of the synthetic shoot's overhead view: speed at two sizes, and quality against the truth.

    Shares ``work/ws-reconstruct-synthetic`` with ``reshoot bench reconstruct``: a scene already trained there with
    the default settings is reused (the stage is skipped), else one is trained (about 15 minutes on 2 cores).
    """
    shoot = make_sample_shoot(Path(work) / "sample-default", PRESETS["default"])
    ws = Workspace(Path(work) / "ws-reconstruct-synthetic")
    run_ingest(ws, list(shoot.videos.values()), IngestConfig(sync="timecode"))
    run_register(ws, RegisterConfig(survey=shoot.root / "survey"))
    trained = run_reconstruct(ws, ReconstructConfig(steps=steps))
    gaussians = trained.manifest["summary"]["gaussians"]
    truth = sample_truth_view(ws.root, shoot)
    config = truth_view_path_config(truth.camera)
    rows = []
    for width, height in ((640, 360), (320, 180)):  # the ground truth's own size last: scored below
        sized = replace(config, width=width, height=height)
        run_path(ws, sized, force=True)
        for confidence in (False, True):
            start = time.perf_counter()
            result = run_guide(ws, GuideConfig(device="cpu", confidence=confidence), force=True)
            took = time.perf_counter() - start
            s = result.manifest["summary"]
            rows.append({"benchmark": f"guide frames {width}x{height}, CPU, "
                                      f"{'with' if confidence else 'without'} confidence",
                         "result": f"{s['render_fps']:.2f} frames/s", "target": "", "pass": None,
                         "detail": f"{s['frames']} frames in {took:.0f} s; {gaussians} Gaussians; coverage "
                                   f"{s['mean_coverage']:.0%}" + (f"; mean confidence {s['mean_confidence']:.2f}"
                                                                  if confidence else "")})
    scores = score_shot(ws.stage_dir("guide"), truth.frames, truth.actor)
    rows.append({"benchmark": "overhead guide frames vs the ground-truth overhead camera (320x180)",
                 "result": f"PSNR {_regions(scores)}, SSIM {scores['ssim']:.3f}, flicker {scores['flicker']:.2f}; "
                           f"{_verdict(scores)}", "target": "", "pass": None,
                 "detail": f"{scores['frames']} frames (min PSNR {scores['psnr_min_db']:.2f} dB); SSIM set/actor "
                           f"{ssim_text(scores['set_ssim'])}/{ssim_text(scores['actor_ssim'])}; where confidence > "
                           f"0.5: PSNR {scores['confident_psnr_db']:.2f} dB on {scores['confident_fraction']:.0%} of "
                           "pixels; flicker: mean |change frame to frame - the truth's| in 8-bit levels"})
    start = time.perf_counter()
    refined = run_refine(ws, RefineConfig(refiner="classical"), force=True)
    took = time.perf_counter() - start
    after = score_shot(refined.path, truth.frames, truth.actor)
    better = after["psnr_db"] > scores["psnr_db"] and after["flicker"] < scores["flicker"]
    rows.append({"benchmark": "classical refiner: the overhead shot vs the ground truth",
                 "result": f"PSNR {_regions(after)}, SSIM {after['ssim']:.3f}, flicker {after['flicker']:.2f}; "
                           f"{_verdict(after)}",
                 "target": "better than the guide frames", "pass": better,
                 "detail": f"guide: {scores['psnr_db']:.2f} dB, {scores['ssim']:.3f}, {scores['flicker']:.2f}; "
                           f"SSIM set/actor {ssim_text(after['set_ssim'])}/{ssim_text(after['actor_ssim'])}; "
                           f"{refined.manifest['summary']['seconds_per_frame']:.3f} s a frame ({took:.0f} s "
                           "with loading and writing)"})
    return rows


def _regions(scores: dict[str, Any]) -> str:
    """PSNR over the whole frame, the set and the actor, as a benchmark row shows it."""
    return (f"{scores['psnr_db']:.2f} dB (set {db_text(scores['set_psnr_db'])}, actor "
            f"{db_text(scores['actor_psnr_db'])})")


def _verdict(scores: dict[str, Any]) -> str:
    """The verdict ``reshoot eval`` would give these figures, with its reason."""
    v = shot_verdict(scores)
    return f"{v['verdict']} ({v['verdict_reason']})"

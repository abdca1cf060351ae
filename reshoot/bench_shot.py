"""Benchmark of the missing angle on the synthetic shoot: guide render speed and the guide frames' PSNR/SSIM against
the ground-truth overhead camera (never in the footage), with the overhead path rebuilt from that camera's pose."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reshoot.evaluation import sample_truth_view, truth_view_path_config
from reshoot.footage import read_image
from reshoot.guide import GuideConfig, run_guide
from reshoot.ingest import IngestConfig, run_ingest
from reshoot.metrics import psnr, ssim
from reshoot.plan import run_path
from reshoot.reconstruct import ReconstructConfig, run_reconstruct
from reshoot.register import RegisterConfig, run_register
from reshoot.sample import PRESETS, make_sample_shoot
from reshoot.workspace import Workspace


def bench_guide(work: Path, steps: int | None = None) -> list[dict[str, Any]]:
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
    scores = score_guides(ws.stage_dir("guide"), truth.frames)
    rows.append({"benchmark": "overhead guide frames vs the ground-truth overhead camera (320x180)",
                 "result": f"PSNR {scores['psnr_db']:.2f} dB (min {scores['psnr_min_db']:.2f}), SSIM "
                           f"{scores['ssim']:.3f}", "target": "", "pass": None,
                 "detail": f"{scores['frames']} frames; where confidence > 0.5: PSNR "
                           f"{scores['confident_psnr_db']:.2f} dB on {scores['confident_fraction']:.0%} of pixels"})
    return rows


def score_guides(guide_dir: Path, truth_frames: dict[int, Path]) -> dict[str, float]:
    """PSNR/SSIM of guide frames against ground-truth frames (output frame = timeline frame), overall and where the
    confidence map exceeds 0.5."""
    rows, confident, fractions = [], [], []
    for frame_idx, truth_file in truth_frames.items():
        guide = torch.from_numpy(read_image(guide_dir / "rgb" / f"{frame_idx:06d}.png").astype(np.float32) / 255)
        truth = torch.from_numpy(read_image(truth_file)[..., :3].astype(np.float32) / 255)
        rows.append((psnr(guide, truth), float(ssim(guide, truth))))
        confidence_file = guide_dir / "confidence" / f"{frame_idx:06d}.png"
        if confidence_file.is_file():
            mask = torch.from_numpy(read_image(confidence_file)[..., 0] > 127)
            fractions.append(float(mask.float().mean()))
            if mask.any():
                confident.append(psnr(guide, truth, mask))
    values = np.array(rows)
    return {"psnr_db": float(values[:, 0].mean()), "psnr_min_db": float(values[:, 0].min()),
            "ssim": float(values[:, 1].mean()), "frames": len(rows),
            "confident_psnr_db": float(np.mean(confident)) if confident else float("nan"),
            "confident_fraction": float(np.mean(fractions)) if fractions else 0.0}

"""Benchmarks of the splat scene: the CPU rasterizer, training on the synthetic shoot (scored on the overhead
camera nobody filmed and on a left-out set camera), and caliscope leave-one-camera-out.

``reshoot bench reconstruct`` and ``reshoot bench raster`` print these rows (see ``reshoot_bench``).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reshoot.evaluation.evaluate import EvalConfig, run_eval
from reshoot.evaluation.report import flicker_text
from reshoot.evaluation.scores import mean_region_scores, sample_geometry_errors, sample_truth_view
from reshoot.footage import read_image
from reshoot.metrics import region_scores
from reshoot.sample import PRESETS, make_sample_shoot
from reshoot.splat.data import load_shot_footage, normalised_times
from reshoot.splat.pointcloud import read_points_ply
from reshoot.splat.render import render
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages.reconstruct import (ReconstructConfig, evaluate_camera, load_scene, run_reconstruct, to_uint8,
                                        with_trained_poses)
from reshoot.stages.register import RegisterConfig, run_register
from reshoot.viz import contact_sheet, save_png
from reshoot.workspace import StageError, Workspace
from reshoot_bench import ingest_caliscope


def bench_reconstruct(data: Path, work: Path, steps: int | None = None,
                      caliscope_steps: int | None = None) -> list[dict[str, Any]]:
    """Training time and held-out quality on the synthetic shoot (default size) and on caliscope."""
    rows = _synthetic_rows(work, steps)
    rows += _caliscope_rows(Path(data) / "caliscope_4cam", work, caliscope_steps)
    return rows


def _synthetic_rows(work: Path, steps: int | None) -> list[dict[str, Any]]:
    shoot = make_sample_shoot(work / "sample-default", PRESETS["default"])
    ws = Workspace(work / "ws-reconstruct-synthetic")
    run_ingest(ws, list(shoot.videos.values()), IngestConfig(sync="timecode"))
    run_register(ws, RegisterConfig(survey=shoot.root / "survey"))
    rows = training_step_rows(ws)
    # the full scene last: `bench shot` reuses the scene left in this workspace (as `bench all` runs it next)
    for holdout, per_instant in ((None, 0), ("cam1", 1500), (None, 1500)):
        start = time.perf_counter()
        config = ReconstructConfig(steps=steps, holdout=holdout, dynamic_per_instant=per_instant)
        result = run_reconstruct(ws, config, force=True)
        took = time.perf_counter() - start
        summary = result.manifest["summary"]
        detail = (f"training {result.manifest['timings_s']['training']:.0f} s of {took:.0f} s; "
                  f"{summary['gaussians']} Gaussians ({summary['dynamic_gaussians']} dynamic); "
                  f"{summary['training_steps']} steps; training PSNR {summary['final_train_psnr_db']:.1f} dB")
        if holdout is None and per_instant == 0:
            scored = score_truth_view(ws, shoot, result.path, work / "overhead-static-only.png")
            rows.append({"benchmark": "reconstruct synthetic, set only (no dynamic Gaussians): the overhead camera",
                         "result": f"PSNR {scored['psnr_db']:.2f} dB, SSIM {scored['ssim']:.3f}; on the actor "
                                   f"{scored['actor_psnr_db']:.2f} dB", "target": "below the full scene",
                         "pass": None, "detail": detail + "; " + placement_text(scored)})
        elif holdout is None:
            scored = score_truth_view(ws, shoot, result.path, work / "overhead.png")
            rows.append({"benchmark": "reconstruct synthetic (default size, fast preset): overhead camera, never filmed",
                         "result": f"PSNR {scored['psnr_db']:.2f} dB (min {scored['psnr_min_db']:.2f}), "
                                   f"SSIM {scored['ssim']:.3f} over {scored['frames']} frames; set "
                                   f"{scored['set_psnr_db']:.2f} dB, actor {scored['actor_psnr_db']:.2f} dB",
                         "target": ">= 25 dB (set 27, actor 22) within 10 min CPU",
                         "pass": scored["psnr_db"] >= 25.0 and scored["set_psnr_db"] >= 27.0
                         and scored["actor_psnr_db"] >= 22.0 and took <= 600,
                         "detail": detail + f"; {placement_text(scored)}; side by side {work / 'overhead.png'}"})
            rows.append(_geometry_row(ws, shoot, result.path))
        else:
            h = summary["holdout"]
            rows.append({"benchmark": f"reconstruct synthetic: left-out set camera {holdout}",
                         "result": f"PSNR {h['psnr_db']:.2f} dB, SSIM {h['ssim']:.3f} over {len(h['frames'])} frames",
                         "target": "measured", "pass": None, "detail": detail})
    return rows


def training_step_rows(ws: Workspace, steps: int = 12) -> list[dict[str, Any]]:
    """Seconds per training step on the workspace's footage (the fast preset, full size), in the set phase (every
    static Gaussian drawn) and the performance phase (the dynamic ones over the cached set), with the compiled CPU
    kernels and with the torch twin alone; and where a compiled set-phase step spends its time (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from reshoot.splat.kernels import composite_kernels, torch_twin
    from reshoot.stages.reconstruct import prepare_training

    rows, seconds = [], {}
    engines = [("compiled", contextlib.nullcontext)] if composite_kernels() is not None else []
    for engine, chooser in engines + [("torch twin", torch_twin)]:
        with chooser():
            trainer = prepare_training(ws.root, ReconstructConfig(), torch.device("cpu")).trainer
            for phase, first in (("set", 0), ("performance", trainer.set_steps)):
                trainer.step_idx = first
                trainer.step()  # warm-up
                start = time.perf_counter()
                for _ in range(steps):
                    trainer.step()
                seconds[engine, phase] = (time.perf_counter() - start) / steps
            if engine == "compiled":
                trainer.step_idx = 0
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    for _ in range(4):
                        trainer.step()
    size = "x".join(str(int(v)) for v in trainer.footage.cameras.image_size[0])
    for phase in ("set", "performance"):
        twin = seconds["torch twin", phase]
        result = (f"{seconds['compiled', phase]:.3f} s compiled, {twin:.3f} s torch twin "
                  f"({twin / seconds['compiled', phase]:.1f}x)" if engines else f"{twin:.3f} s torch twin "
                  "(compiled kernels not available)")
        rows.append({"benchmark": f"training step, {phase} phase ({size}, {len(trainer.scene)} Gaussians at start)",
                     "result": result, "target": "measured", "pass": None,
                     "detail": f"mean of {steps} steps after a warm-up; {torch.get_num_threads()} torch threads"})
    if engines:
        ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:5]
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        rows.append({"benchmark": "  where a compiled set-phase step goes (self CPU time)",
                     "result": ", ".join(f"{e.key} {e.self_cpu_time_total / total:.0%}" for e in ops),
                     "target": "measured", "pass": None, "detail": "torch profiler over 4 steps"})
    return rows


def score_truth_view(ws: Workspace, shoot, reconstruct_dir: Path, sheet: Path | None = None,
                     role: str = "overhead", localise: bool = True) -> dict[str, Any]:
    """Render the sample's ground-truth ``role`` camera at every instant it filmed; PSNR/SSIM against it, over the
    whole frame, the set and the actor (:func:`reshoot.evaluation.scores.mean_region_scores`).

    ``localise``: the camera is localised against the scene first (:mod:`reshoot.localise`); the result then also
    holds ``placed``, the same scores where the registration's similarity alone puts it, and ``placement``, how
    far localising moved it."""
    scene, _ = load_scene(reconstruct_dir)
    view = sample_truth_view(ws.root, shoot, role, scene=scene if localise else None)
    count = json.loads((ws.root / "ingest" / "footage.json").read_text())["timeline"]["frame_count"]
    scored = _scores(scene, view, view.camera, normalised_times(count), sheet, role)
    if view.localised is not None:
        scored["placed"] = _scores(scene, view, view.placed, normalised_times(count))
        scored["placement"] = view.localised.fields()
    return scored


@torch.no_grad()
def _scores(scene, view, camera, times: np.ndarray, sheet: Path | None = None, role: str = "") -> dict[str, Any]:
    rows, cells = [], []
    picks = set(list(view.frames)[:: max(1, len(view.frames) // 5)])
    for frame_idx, truth_path in view.frames.items():
        image = render(scene, camera, float(times[frame_idx])).rgb.clamp(0, 1)
        filmed = read_image(truth_path)[..., :3]
        truth = torch.as_tensor(filmed, dtype=torch.float32) / 255.0
        mask = torch.as_tensor(view.actor[frame_idx]) if frame_idx in view.actor else None
        rows.append(region_scores(image, truth, mask))
        if frame_idx in picks:
            cells.append((frame_idx, filmed, to_uint8(image), rows[-1]["psnr_db"]))
    if sheet is not None and cells:
        save_png(contact_sheet({
            "truth": [(f"frame {k}", a) for k, a, _, _ in cells],
            "rendered": [(f"{p:.1f} dB", b) for _, _, b, p in cells]}, title=f"{role} camera: truth vs rendered"), sheet)
    return {**mean_region_scores(rows), "frames": len(rows)}


def placement_text(scored: dict[str, Any]) -> str:
    """How the truth camera was placed, and what the similarity's placement alone scores (for a row's detail)."""
    if "placed" not in scored:
        return "truth camera placed by the registration's similarity"
    p, m = scored["placed"], scored["placement"]
    return (f"truth camera localised against the scene (turned {m['rotation_deg']:.2f} deg, moved {100 * m['shift']:.2f} "
            f"% of its distance, focal {100 * m['focal_change']:+.2f} %); where the similarity alone puts it: PSNR "
            f"{p['psnr_db']:.2f} dB (set {p['set_psnr_db']:.2f}, actor {p['actor_psnr_db']:.2f}), SSIM {p['ssim']:.3f}")


def _geometry_row(ws: Workspace, shoot, reconstruct_dir: Path) -> dict[str, Any]:
    """The dense set geometry reconstruct started from, against the sample's true overhead depth."""
    dense = reconstruct_dir / "dense_points.ply"
    if not dense.is_file():
        return {"benchmark": "dense set geometry vs the true overhead depth", "result": "skipped: built with --no-dense",
                "pass": None}
    xyz, _ = read_points_ply(dense)
    sparse, _ = read_points_ply(ws.stage_dir("register") / "sparse_points.ply")
    g = sample_geometry_errors(ws.stage_dir("register"), shoot, xyz)
    s = sample_geometry_errors(ws.stage_dir("register"), shoot, sparse)
    return {"benchmark": "dense set geometry vs the true overhead depth (frame 0, the set's pixels)",
            "result": f"covers {g['coverage']:.1%} of the set; median depth error {100 * g['median_error_m']:.1f} cm "
                      f"(90th percentile {100 * g['p90_error_m']:.1f} cm)", "target": "measured", "pass": None,
            "detail": f"{g['points']} points; the sparse SfM points alone: {s['points']} points covering "
                      f"{s['coverage']:.1%}, median {100 * s['median_error_m']:.1f} cm"}


def _caliscope_rows(folder: Path, work: Path, steps: int | None) -> list[dict[str, Any]]:
    """Each caliscope camera left out in turn: how well the scene renders it, and how well it fits the three
    cameras it was trained on (the scene must at least fit what it saw). ``steps``: None, the default preset's."""
    ws = Workspace(work / "ws-reconstruct-caliscope")
    if not ingest_caliscope(folder, ws):
        return [{"benchmark": "reconstruct caliscope leave-one-out", "result": f"skipped: {folder} absent", "pass": None}]
    run_register(ws, RegisterConfig(calibration="triangulate", dynamic="instants", plate_frames=12))
    rows = []
    cameras = ("cam_0", "cam_1", "cam_2", "cam_3")
    for camera_id in cameras:
        start = time.perf_counter()
        config = ReconstructConfig(downscale=4, holdout=camera_id, **({"steps": steps} if steps else {}))
        result = run_reconstruct(ws, config, force=True)
        took = time.perf_counter() - start
        summary = result.manifest["summary"]
        h = summary["holdout"]
        scene, appearance = load_scene(result.path / "scene.pt")
        footage = with_trained_poses(load_shot_footage(ws.root, downscale=config.downscale), result.path)
        # each training camera in its own learnt colours (the webcams' white balance differs by up to 7 dB)
        fits = {c: evaluate_camera(scene, footage, c, appearance=appearance[c])["psnr_db"]
                for c in cameras if c != camera_id}
        w, hgt = summary["image_size"]
        rows.append({"benchmark": f"reconstruct caliscope, {camera_id} left out ({w}x{hgt}, "
                                  f"{summary['training_steps']} steps)",
                     "result": f"PSNR {h['psnr_db']:.2f} dB ({h['psnr_colour_matched_db']:.2f} dB with its colours "
                               f"matched by one 3x4 map), SSIM {h['ssim']:.3f} over {len(h['frames'])} frames; "
                               f"training cameras {np.mean(list(fits.values())):.2f} dB "
                               f"({', '.join(f'{c} {v:.2f}' for c, v in fits.items())})",
                     "target": "measured", "pass": None,
                     "detail": f"{took:.0f} s; {result.path / 'holdout.png'}"})
        (work / f"caliscope-holdout-{camera_id}.png").write_bytes((result.path / "holdout.png").read_bytes())
        rows.append(_caliscope_eval_row(ws, camera_id))
    return rows


def _caliscope_eval_row(ws: Workspace, camera_id: str) -> dict[str, Any]:
    """``reshoot eval`` of the left-out camera: its guide frames and the classical refiner's shot against its footage."""
    try:
        m = run_eval(ws, EvalConfig(camera=camera_id))
    except (StageError, ValueError, RuntimeError) as exc:  # a row that says why, not an hour's benchmark lost
        return {"benchmark": f"eval caliscope {camera_id}", "result": f"failed: {exc}"[:300], "pass": False}
    guide, refined = m["guide"], m["refined"]
    return {"benchmark": f"eval caliscope {camera_id} (reshoot eval: guide -> {m['refiner']} refined)",
            "result": f"PSNR {guide['psnr_db']:.2f} -> {refined['psnr_db']:.2f} dB, SSIM {guide['ssim']:.3f} -> "
                      f"{refined['ssim']:.3f}, flicker {flicker_text(guide['flicker'])} -> {flicker_text(refined['flicker'])}",
            "target": "measured", "pass": None,
            "detail": f"with the camera's colours matched (one 3x4 map) {guide['psnr_colour_matched_db']:.2f} -> "
                      f"{refined['psnr_colour_matched_db']:.2f} dB; {m['seconds']:.0f} s; "
                      f"{ws.root / 'eval' / camera_id / 'report.html'}"}

"""Validation: reshoot a camera that exists, and compare with what it really filmed.

``reshoot eval --workspace WS --camera CAM`` renders the angle of a camera whose true footage is known, through the
same guide and refine code as a real reshoot, and scores both against the truth, frame by frame: PSNR, SSIM and
flicker (the frame-to-frame change that the truth does not have). Two kinds of truth:

- ``--camera overhead`` (or another ground-truth role) on the built-in sample: the hidden camera that never filmed
  for training (the workspace must be the sample's: ``reshoot demo`` records its ground truth);
- ``--camera cam1`` (a set camera): the scene must have been trained without it (``reshoot reconstruct --holdout
  cam1``), and its own footage, undistorted to the pinhole the scene renders, is the truth.

It writes ``WS/eval/<camera>/``: ``report.html`` (figures, per-frame plots, side-by-side frames, a flip-book strip:
what a supervisor reads to decide whether to trust a reshoot), ``metrics.json`` and the pictures it shows.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from reshoot.atomic import atomic_write_json, atomic_write_text
from reshoot.camera_path import Timeline
from reshoot.cameras import Cameras
from reshoot.guide import RealCameras, render_guide
from reshoot.metrics import flicker, psnr, ssim
from reshoot.progress import track
from reshoot.reconstruct import choose_device, load_scene
from reshoot.refine.base import RefineInputs
from reshoot.refine.stage import RefineConfig, make_refiner
from reshoot.splat.data import load_shot_footage, registered_rig
from reshoot.viz import contact_sheet, save_png
from reshoot.workspace import StageError, Workspace


@dataclass(frozen=True)
class EvalConfig:
    """What to validate."""

    camera: str = "overhead"
    """The camera to reshoot: a set camera the scene was trained without (--holdout), or a ground-truth role of the
    built-in sample (overhead)."""
    confidence: bool = True
    """Compute the guide's confidence map (the refiners use it; slower)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the scene renders (auto: CUDA when there is a GPU)."""


@dataclass(frozen=True, eq=False)
class TruthPath:
    """A real camera as a path to render: one output frame per timeline frame, with the camera's own lens (its
    principal point may be off-centre, which a CameraPath's is not). Has what ``render_guide`` reads of a path."""

    name: str
    lens: Cameras  # one pinhole camera: intrinsics and size
    world_to_camera: np.ndarray  # [T, 4, 4]

    def __len__(self) -> int:
        return len(self.world_to_camera)

    @property
    def timeline_frames(self) -> np.ndarray:  # [T]
        return np.arange(len(self), dtype=np.float64)

    def camera(self, idx: int) -> Cameras:
        return replace(self.lens, world_to_camera=self.world_to_camera[idx][None])


@dataclass(frozen=True)
class Truth:
    """The camera to reshoot and what it filmed, on the footage timeline."""

    path: TruthPath
    frames: dict[int, np.ndarray]  # timeline frame -> true image [H, W, 3] uint8


def run_eval(workspace: Workspace, config: EvalConfig = EvalConfig()) -> dict[str, Any]:
    """Reshoot ``config.camera``, score guide and refined frames against its truth, write the report; returns the
    metrics (also in ``WS/eval/<camera>/metrics.json``)."""
    root = workspace.root
    if not workspace.manifest("reconstruct"):
        raise StageError(f"no scene in {root}: run `reshoot reconstruct --workspace {root}` first")
    start = time.perf_counter()
    timeline = Timeline.from_workspace(root)
    device = choose_device(config.device)
    scene, appearance = load_scene(workspace.stage_dir("reconstruct") / "scene.pt", device=str(device))
    truth = _truth(workspace, config.camera, list(appearance), timeline)
    cameras, poses, valid = registered_rig(root, list(appearance))
    real = RealCameras(cameras, poses, valid) if config.confidence else None
    frames = [render_guide(scene, truth.path, i, timeline, real)
              for i in track(range(len(truth.path)), f"reshooting {config.camera}")]
    inputs = RefineInputs(np.stack([f.rgb for f in frames]), np.stack([f.confidence if f.confidence is not None
                                                                       else f.alpha for f in frames]),
                          np.stack([f.alpha for f in frames]), fps=float(timeline.fps))
    refine_manifest = workspace.manifest("refine")
    refine_config = (RefineConfig(**{k: v for k, v in refine_manifest["config"].items()
                                     if k in RefineConfig.__dataclass_fields__ and k not in ("start_image",
                                                                                             "end_image")})
                     if refine_manifest else RefineConfig())
    refined = make_refiner(refine_config).refine(inputs).frames
    return write_report(root, config.camera, refine_config.refiner, inputs.guide, refined, truth.frames,
                        scene=workspace.stage_dir("reconstruct") / "scene.pt", started=start)


def write_report(workspace_root: Path, camera: str, refiner: str, guide: np.ndarray, refined: np.ndarray,
                 truth: dict[int, np.ndarray], scene: Path, started: float | None = None) -> dict[str, Any]:
    """Score a reshoot of ``camera`` against what it filmed and write ``WS/eval/<camera>/`` (metrics.json, the
    pictures, report.html); returns the metrics.

    ``guide`` and ``refined`` are the shot's frames ``[T, H, W, 3]`` in [0, 1], frame ``i`` at timeline frame ``i``;
    ``truth`` maps timeline frames to what the camera filmed (uint8 ``[H, W, 3]``), for some or all frames."""
    out = Path(workspace_root) / "eval" / camera
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"camera": camera, "refiner": refiner, "seconds": None, "scene": str(scene)}
    for name, shot in (("guide", guide), ("refined", refined)):
        metrics[name] = score_frames(shot, truth)
    metrics["seconds"] = None if started is None else time.perf_counter() - started
    _pictures(out, guide, refined, truth, camera)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.html", report_html(metrics, camera, Path(workspace_root)))
    return metrics


def flicker_text(value: float | None) -> str:
    """A flicker figure for tables and the report: ``-`` where there was none (no consecutive frames with a truth)."""
    return "-" if value is None else f"{value:.2f}"


def score_frames(shot: np.ndarray, truth: dict[int, np.ndarray]) -> dict[str, Any]:
    """PSNR/SSIM per frame (those with a truth) and overall, and flicker over consecutive frames with a truth."""
    per_frame, flickers = [], []
    for i, image in truth.items():
        t = torch.from_numpy(image.astype(np.float32) / 255)
        s = torch.from_numpy(np.ascontiguousarray(shot[i], dtype=np.float32))
        row = {"frame": i, "psnr_db": psnr(s, t), "ssim": float(ssim(s, t))}
        if i + 1 in truth:
            t2 = torch.from_numpy(truth[i + 1].astype(np.float32) / 255)
            row["flicker"] = flicker(torch.stack([s, torch.from_numpy(shot[i + 1].astype(np.float32))]),
                                     torch.stack([t, t2]))
            flickers.append(row["flicker"])
        per_frame.append(row)
    values = np.array([[r["psnr_db"], r["ssim"]] for r in per_frame])
    return {"psnr_db": float(values[:, 0].mean()), "psnr_min_db": float(values[:, 0].min()),
            "ssim": float(values[:, 1].mean()), "flicker": float(np.mean(flickers)) if flickers else None,
            "per_frame": per_frame}


def _truth(workspace: Workspace, camera: str, trained: list[str], timeline: Timeline) -> Truth:
    root = workspace.root
    if camera in trained:
        raise StageError(f"the scene in {root / 'reconstruct'} was trained on {camera!r}, so it cannot be judged on "
                         f"it: run `reshoot reconstruct --workspace {root} --holdout {camera}` first")
    cameras, poses, valid = registered_rig(root)
    if camera in cameras.camera_ids:
        downscale = (workspace.manifest("reconstruct") or {}).get("config", {}).get("downscale", 1)
        footage = load_shot_footage(root, downscale=downscale, cameras=[camera])  # the size the scene learnt at
        one = footage.cameras
        w, h = (int(v) for v in one.image_size[0])
        frames = {int(f): footage.images[0, t, :h, :w] for t, f in enumerate(footage.frames) if footage.valid[0, t]}
        world_to_camera = footage.world_to_camera[0]
    else:
        ground_truth = workspace.info.get("ground_truth")
        if not ground_truth:
            raise StageError(f"{camera!r} is not a registered camera of {root} ({', '.join(cameras.camera_ids)}), and "
                             "the workspace has no ground truth (the built-in sample's, recorded by `reshoot demo`). To validate a reshoot "
                             f"of your own footage, leave a set camera out: `reshoot reconstruct --workspace {root} "
                             f"--holdout {cameras.camera_ids[0]}`, then `reshoot eval --workspace {root} --camera "
                             f"{cameras.camera_ids[0]}`")
        from reshoot.evaluation import sample_truth_view
        from reshoot.footage import read_image
        from reshoot.sample import load_sample_shoot

        view = sample_truth_view(root, load_sample_shoot(Path(ground_truth).parent), camera)
        one = view.camera
        frames = {j: read_image(p)[..., :3] for j, p in view.frames.items()}
        world_to_camera = np.repeat(one.world_to_camera, timeline.frame_count, axis=0)
    return Truth(TruthPath(camera, replace(one, distortion=np.zeros_like(one.distortion)), world_to_camera), frames)


def _pictures(out: Path, guide: np.ndarray, refined: np.ndarray, truth: dict[int, np.ndarray], camera: str) -> None:
    """side_by_side.png (truth, guide, refined at five instants) and flipbook.png (every frame, a strip each)."""
    def u8(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)

    known = sorted(truth)
    picks = [known[i] for i in np.unique(np.linspace(0, len(known) - 1, min(5, len(known))).round().astype(int))]
    save_png(contact_sheet({"truth": [(f"f{i}", truth[i]) for i in picks],
                            "guide": [(f"f{i}", u8(guide[i])) for i in picks],
                            "refined": [(f"f{i}", u8(refined[i])) for i in picks]},
                           title=f"{camera}: what it filmed, the guide frames, the refined shot"), out / "side_by_side.png")
    step = max(1, len(known) // 12)
    strip = known[::step]
    small = {name: [(f"{i}", _shrink(frames[i])) for i in strip]
             for name, frames in (("truth", {i: truth[i] for i in strip}), ("refined", {i: u8(refined[i]) for i in strip}))}
    save_png(contact_sheet(small, title=f"{camera}: flip-book, every {step} frame(s)"), out / "flipbook.png")


def _shrink(image: np.ndarray, height: int = 72) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * height / h)), height), Image.BILINEAR))


def report_html(metrics: dict[str, Any], camera: str, workspace_root: Path) -> str:
    """The report a supervisor reads: headline figures, per-frame plots (inline SVG), the pictures."""
    g, r = metrics["guide"], metrics["refined"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{m['psnr_db']:.2f} dB (min {m['psnr_min_db']:.2f})</td><td>{m['ssim']:.3f}</td>"
        f"<td>{flicker_text(m['flicker'])}</td></tr>"
        for name, m in (("guide frames", g), (f"refined ({html.escape(metrics['refiner'])})", r)))
    verdict = ("The refined shot is closer to the truth than the guide frames" if r["psnr_db"] > g["psnr_db"]
               else "The refiner did not bring the shot closer to the truth")
    plots = "".join(_svg_plot([g, r], key, label) for key, label in (("psnr_db", "PSNR (dB) per frame"),
                                                                      ("ssim", "SSIM per frame"),
                                                                      ("flicker", "flicker (8-bit levels) per frame")))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>reshoot eval: {html.escape(camera)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:24px auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px}}img{{max-width:100%}}.legend span{{margin-right:16px}}</style></head><body>
<h1>Reshooting {html.escape(camera)}</h1>
<p>Workspace <code>{html.escape(str(workspace_root))}</code>. The camera's angle was rendered from the splat scene (which
never saw this camera's footage) and refined, then compared with what the camera really filmed, on
{len(g['per_frame'])} frames. {html.escape(verdict)}.</p>
<table><tr><th>shot</th><th>PSNR</th><th>SSIM</th><th>flicker</th></tr>{rows}</table>
<p>PSNR and SSIM: higher is closer to the truth (identical: infinite PSNR, SSIM 1). Flicker: the mean difference
between the shot's frame-to-frame change and the truth's, in 8-bit levels (0: the shot changes exactly as the
truth does).</p>
<div class="legend"><span style="color:#d62728">&#9632; guide frames</span><span style="color:#1f77b4">&#9632; refined</span></div>
{plots}
<h2>Side by side</h2><img src="side_by_side.png" alt="truth, guide and refined frames">
<h2>Flip-book</h2><img src="flipbook.png" alt="truth and refined, every few frames">
<p style="color:#777">metrics.json has every number on this page.</p></body></html>
"""


def _svg_plot(series: list[dict[str, Any]], key: str, title: str, width: int = 900, height: int = 180) -> str:
    """A small line chart of ``key`` per frame for each series (guide red, refined blue), as inline SVG."""
    colours = ["#d62728", "#1f77b4"]
    points = [[(row["frame"], row[key]) for row in s["per_frame"] if row.get(key) is not None] for s in series]
    values = [v for p in points for _, v in p]
    if not values:
        return ""
    frames = [f for p in points for f, _ in p]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    f0, f1 = min(frames), max(frames) or 1

    def xy(frame: float, value: float) -> str:
        x = 50 + (frame - f0) / max(f1 - f0, 1) * (width - 60)
        y = 10 + (hi - value) / span * (height - 40)
        return f"{x:.1f},{y:.1f}"

    lines = "".join(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(xy(f, v) for f, v in p)}"/>'
                    for p, c in zip(points, colours))
    return (f'<h3>{html.escape(title)}</h3><svg width="{width}" height="{height}" style="background:#fafafa">'
            f'<text x="4" y="16" font-size="11">{hi:.2f}</text><text x="4" y="{height - 28}" font-size="11">{lo:.2f}'
            f'</text><text x="50" y="{height - 6}" font-size="11">frame {f0}</text><text x="{width - 80}" '
            f'y="{height - 6}" font-size="11">frame {f1}</text>{lines}</svg>')

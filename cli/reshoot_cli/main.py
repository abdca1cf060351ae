"""``reshoot``: the command line. Each command is a dataclass (its fields are the flags, their
docstrings the help) whose ``run`` calls the library's public API and prints what happened.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import reshoot
from reshoot.atomic import atomic_write_json, atomic_write_text
from reshoot.evaluation.evaluate import EvalConfig
from reshoot.evaluation.report import db_text, flicker_text, ssim_text
from reshoot.pipeline.job import JobConfig, load_job_config
import reshoot.pipeline.job
import reshoot.progress
from reshoot.sample import PRESETS, SampleConfig
from reshoot.stages.export import ExportConfig
from reshoot.stages.guide import GuideConfig
from reshoot.stages.ingest import IngestConfig
from reshoot.stages.path import PathConfig
from reshoot.stages.reconstruct import ReconstructConfig
from reshoot.stages.refine import RefineConfig
from reshoot.stages.register import RegisterConfig
import reshoot.workspace
import reshoot_bench as bench
from reshoot_cli.batch import BatchCommand
from reshoot_cli.view import ViewCommand

console = Console(stderr=True)
out = Console()


def _join_wrapped_help_lines() -> None:
    """tyro joins a help text's wrapped lines only where the next line starts with a letter, before dedenting;
    the continuation lines of a field's docstring are indented, so every source line break showed in ``--help``
    ("one pose per frame (dolly,⏎handheld)"). Dedent first (``inspect.cleandoc``), then let tyro join them."""
    strings = getattr(tyro, "_strings", None)
    original = getattr(strings, "remove_single_line_breaks", None)
    if original is None or getattr(original, "dedents_first", False):
        return

    def remove_single_line_breaks(text: str) -> str:
        return original(inspect.cleandoc(text))

    remove_single_line_breaks.dedents_first = True
    strings.remove_single_line_breaks = remove_single_line_breaks


_join_wrapped_help_lines()
if not out.is_terminal:  # piped or captured: wide enough that tables are not cut
    out = Console(width=120)


@dataclass
class SampleCommand:
    """Generate the built-in synthetic shoot: set cameras' videos (with audio and timecode) and the
    held-out overhead camera's ground truth. The same config gives the same shoot."""

    out: Path = Path("reshoot-sample")
    """Folder to write (created; must be new, empty, or an earlier sample shoot)."""
    preset: Literal["default", "small", "tiny"] = "default"
    """Starting config: `default` (4 cameras, 48 frames, 320x180), `small` (3 cameras at 160x90, still registers)
    or `tiny` (for tests); flags override it."""
    force: bool = False
    """Render again even if the folder already holds this exact shoot."""
    config: Annotated[SampleConfig, tyro.conf.arg(name="")] = field(default_factory=SampleConfig)

    def run(self) -> None:
        shoot = reshoot.make_sample_shoot(self.out, self.config, force=self.force)
        verb = "already up to date" if shoot.skipped else "written"
        out.print(f"[bold]sample shoot {verb}:[/] {shoot.root}")
        _print_cameras(shoot.ground_truth["cameras"])
        out.print(f"ground truth: {shoot.root / 'ground_truth.json'}\ncontact sheet: {shoot.root / 'contact_sheet.png'}")


@dataclass
class DemoCommand:
    """Run the main job on the built-in sample: make the shoot in DIR/footage and run every stage on it in
    DIR/workspace, ending in an overhead shot (movie, image sequences, camera files) checked against what the
    sample's hidden overhead camera filmed."""

    dir: Path = Path("reshoot-demo")
    """Folder for the demo's footage and workspace."""
    preset: Literal["default", "small"] = "default"
    """Sample size: `default` (a few minutes on 2 cores) or `small` (about a minute, rougher numbers)."""
    force: bool = False
    """Make everything again even if it is up to date."""

    def run(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = reshoot.run_demo(self.dir, self.preset, self.force)
        shoot = result.shoot
        out.print(f"[bold]sample shoot[/] ({'re-used' if shoot.skipped else 'rendered'}): {shoot.root}")
        _print_ingest(result.ingest)
        table = Table(title="audio sync against the ground truth")
        for col in ("camera", "recovered offset", "true offset", "error"):
            table.add_column(col)
        for row in result.sync_check:
            table.add_row(row["camera_id"], f"{row['offset_s']:+.5f} s", f"{row['true_offset_s']:+.5f} s",
                          f"{row['error_ms']:+.3f} ms")
        out.print(table)
        _print_register(result.register)
        table = Table(title="registration against the ground truth (after a similarity alignment)")
        for col in ("camera", "rotation error", "centre error"):
            table.add_column(col)
        for row in result.pose_check:
            table.add_row(row["camera_id"], f"{row['rotation_deg']:.3f} deg",
                          f"{row['centre_error'] * 100:.1f} cm ({row['centre_error_pct']:.2f} % of the set)")
        out.print(table)
        table = Table(title="the stages after registration")
        for col in ("stage", "", "took", "figures"):
            table.add_column(col)
        for name, stage in result.later.items():
            took = stage.manifest.get("timings_s", {}).get("total")
            table.add_row(name, "up to date" if stage.skipped else "ran", f"{took:.1f} s" if took is not None else "",
                          reshoot.pipeline.job.headline(name, stage.manifest.get("summary", {})))
        out.print(table)
        if result.placement is not None:
            out.print(f"the hidden overhead camera, placed in the registered world by the similarity that aligns the "
                      f"set cameras, then {result.placement.describe()}")
        _print_shot_scores("the overhead shot against what the hidden overhead camera filmed",
                           {"guide frames (rendered from the scene)": result.shot_check["guide"],
                            "refined (classical)": result.shot_check["refine"]})
        shot = result.later["export"].path
        movie = sorted(shot.glob("*.mp4"))
        out.print(f"[bold]the shot:[/] {movie[0] if movie else shot}   camera for Nuke: {next(shot.glob('*.chan'), '-')}")
        exr = result.later["export"].manifest["summary"].get("colour", {}).get("exr")
        if exr:
            out.print(f"EXR sequence ({exr}, colourspace in each header): {shot / 'exr'}")
        out.print(f"contact sheet: {shot / 'contact_sheet.png'}   beside the nearest real camera: "
                  f"{shot / 'side_by_side.png'}")
        out.print(f"[bold]report[/] (the shot against the truth, frame by frame): {result.report}")
        out.print(f"workspace: {result.workspace.root}")
        out.print(f"missing shot's ground truth: {shoot.root / 'ground_truth' / 'overhead'}/")


@dataclass
class IngestCommand:
    """Ingest: read the camera files (videos or image-sequence folders, one per camera), sync them and
    extract frames into WS/ingest in COLMAP's rig layout, with a contact sheet to check the sync by eye."""

    sources: tyro.conf.Positional[tuple[Path, ...]]
    """Camera files or image-sequence folders, one per camera. They are only ever read."""
    workspace: Path = Path("reshoot-workspace")
    """The workspace folder (created when missing)."""
    force: bool = False
    """Run again even if the inputs and options are unchanged."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    config: Annotated[IngestConfig, tyro.conf.arg(name="")] = field(default_factory=IngestConfig)

    def run(self) -> None:
        ws = reshoot.Workspace(self.workspace, wait=self.wait)
        with warnings.catch_warnings():  # _print_ingest shows them, once, with the rest of the summary
            warnings.simplefilter("ignore", UserWarning)
            result = reshoot.run_ingest(ws, self.sources, self.config, force=self.force)
            _print_notes(result)
        _print_ingest(result)


def _print_ingest(result) -> None:
    summary = result.manifest["summary"]
    verb = "up to date (skipped)" if result.skipped else f"done in {result.manifest['timings_s']['total']:.1f} s"
    out.print(f"[bold]ingest {verb}:[/] {summary['cameras']} cameras, {summary['frames']} frames -> {result.path}")
    table = Table(title=f"sync ({summary['sync']['method']}): start of each camera on the reference's clock")
    for col in ("camera", "offset", "confidence"):
        table.add_column(col)
    for camera_id, info in summary["sync"]["cameras"].items():
        detail = info["confidence"]
        if info.get("peak_ratio"):
            detail += f" (peak {info['peak_ratio']:.1f}x the next)"
        table.add_row(camera_id, f"{info['offset_s']:+.4f} s", detail)
    out.print(table)
    start, end = summary["overlap_s"]
    out.print(f"all cameras overlap from {start:.3f} s to {end:.3f} s")
    for camera_id in summary.get("converted_to_srgb", []):
        out.print(f"colour: camera {camera_id} converted from {summary['colourspaces'][camera_id]} to sRGB")
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
    calibration = json.loads((result.path / "footage.json").read_text()).get("calibration")
    if calibration:
        out.print(f"calibration imported ({calibration['kind']}): {result.path / calibration['file']}")
        for note in calibration["notes"]:
            out.print(f"  note: {note}")
    out.print(f"contact sheet: {result.path / 'contact_sheet.png'}")


@dataclass
class RegisterCommand:
    """Register: put the ingested cameras in one 3D frame with a sparse point cloud (COLMAP: SIFT, matching,
    mapping), writing WS/register: sparse/0, cameras.json, transforms.json (nerfstudio) and a preview."""

    workspace: Path = Path("reshoot-workspace")
    """The workspace folder, already ingested."""
    force: bool = False
    """Run again even if the inputs and options are unchanged."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    config: Annotated[RegisterConfig, tyro.conf.arg(name="")] = field(default_factory=RegisterConfig)

    def run(self) -> None:
        ws = _existing_workspace(self.workspace, self.wait)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            result = reshoot.run_register(ws, self.config, force=self.force)
            _print_notes(result)
        _print_register(result)


def _print_register(result) -> None:
    summary = result.manifest["summary"]
    verb = "up to date (skipped)" if result.skipped else f"done in {result.manifest['timings_s']['total']:.1f} s"
    out.print(f"[bold]register {verb}[/] ({summary['calibration']}): {result.path}")
    table = Table()
    for col in ("camera", "registered", "note"):
        table.add_column(col, overflow="fold")
    for camera_id, row in summary["cameras"].items():
        table.add_row(camera_id, f"{row['registered']}/{row['images']}", row.get("failure", ""))
    out.print(table)
    out.print(f"{summary['points']} points, mean reprojection error {summary['mean_reprojection_error_px']:.2f} px, "
              f"mean track length {summary['mean_track_length']:.1f}")
    out.print(f"preview: {result.path / 'preview.png'}\nnerfstudio: {result.path / 'transforms.json'}")


@dataclass
class ReconstructCommand:
    """Reconstruct: train a dynamic Gaussian-splat scene of the shot (the set and the moving actor) on the registered
    footage, writing WS/reconstruct: scene.pt, 3DGS .ply files and a preview; --holdout CAMERA evaluates a left-out
    camera."""

    workspace: Path = Path("reshoot-workspace")
    """The workspace folder, already registered."""
    force: bool = False
    """Run again even if the inputs and options are unchanged."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    config: Annotated[ReconstructConfig, tyro.conf.arg(name="")] = field(default_factory=ReconstructConfig)

    def run(self) -> None:
        ws = _existing_workspace(self.workspace, self.wait)
        result = reshoot.run_reconstruct(ws, self.config, force=self.force)
        _print_notes(result)
        summary = result.manifest["summary"]
        verb = "up to date (skipped)" if result.skipped else f"done in {result.manifest['timings_s']['total']:.1f} s"
        out.print(f"[bold]reconstruct {verb}[/] on {summary['device']}: {result.path}")
        out.print(f"{summary['gaussians']} Gaussians ({summary['dynamic_gaussians']} dynamic) after "
                  f"{summary['training_steps']} steps; training PSNR {summary['final_train_psnr_db']:.2f} dB")
        out.print(f"preview: {result.path / 'preview.png'}\nsplats: {result.path / 'splats_static.ply'}")
        if "holdout" in summary:
            h = summary["holdout"]
            matched = (f" ({h['psnr_colour_matched_db']:.2f} dB with its colours matched)"
                       if "psnr_colour_matched_db" in h else "")
            out.print(f"held-out camera {h['camera_id']}: PSNR {h['psnr_db']:.2f} dB{matched}, SSIM {h['ssim']:.3f} "
                      f"over {len(h['frames'])} frames; side by side: {result.path / 'holdout.png'}")


@dataclass
class PathCommand:
    """Path: design the missing angle as a camera path over the shot's timeline (overhead, dolly between two set
    cameras, orbit, offset of a set camera, between two poses, or imported from nerfstudio/Nuke/reshoot JSON);
    writes WS/path: path.json, plan.png (the set from above with the path) and plan.glb."""

    workspace: Path = Path("reshoot-workspace")
    """The workspace folder, already registered."""
    force: bool = False
    """Run again even if the inputs and options are unchanged."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    config: Annotated[PathConfig, tyro.conf.arg(name="")] = field(default_factory=PathConfig)

    def run(self) -> None:
        ws = _existing_workspace(self.workspace, self.wait)
        result = reshoot.run_path(ws, self.config, force=self.force)
        _print_notes(result)
        s = result.manifest["summary"]
        verb = "up to date (skipped)" if result.skipped else "done"
        out.print(f"[bold]path {verb}[/]: '{s['name']}' ({s['kind']}), {s['frames']} frames at {s['fps']} fps, "
                  f"{s['image_size'][0]}x{s['image_size'][1]}, {s['focal_mm'][0]:.1f}-{s['focal_mm'][1]:.1f} mm, "
                  f"footage frames {s['timeline_frames'][0]:g}-{s['timeline_frames'][1]:g}")
        _print_warnings(s["warnings"])
        out.print(f"plan: {result.path / 'plan.png'}  3D: {result.path / 'plan.glb'}")


@dataclass
class GuideCommand:
    """Guide: render the path from the splat scene, every frame: RGB, coverage (alpha), depth and a confidence map
    (how well the real cameras saw each pixel); writes WS/guide and a contact sheet."""

    workspace: Path = Path("reshoot-workspace")
    """The workspace folder, with a scene (reconstruct) and a path."""
    force: bool = False
    """Run again even if the inputs and options are unchanged."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    config: Annotated[GuideConfig, tyro.conf.arg(name="")] = field(default_factory=GuideConfig)

    def run(self) -> None:
        ws = _existing_workspace(self.workspace, self.wait)
        result = reshoot.run_guide(ws, self.config, force=self.force)
        _print_notes(result)
        s = result.manifest["summary"]
        verb = "up to date (skipped)" if result.skipped else f"done in {result.manifest['timings_s']['total']:.1f} s"
        confidence = f", mean confidence {s['mean_confidence']:.2f}" if s["mean_confidence"] is not None else ""
        out.print(f"[bold]guide {verb}[/] on {s['device']}: {s['frames']} frames of '{s['path']}' at "
                  f"{s['render_fps']:.2f} frames/s; coverage {s['mean_coverage']:.0%} (lowest {s['min_coverage']:.0%})"
                  f"{confidence}")
        _print_warnings(s["warnings"])
        out.print(f"contact sheet: {result.path / 'contact_sheet.png'}")


@dataclass
class RefineCommand:
    """Refine: turn the guide frames into a coherent shot: `classical` (default; fills holes from neighbouring frames
    and by inpainting, removes flicker; CPU, seconds) or a video diffusion model (wan-vace, ltx, v2v) loaded from
    --model; writes WS/refine and a guide-vs-refined comparison."""

    workspace: Path = Path("reshoot-workspace")
    """The workspace folder, with guide frames."""
    force: bool = False
    """Run again even if the inputs and options are unchanged."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    config: Annotated[RefineConfig, tyro.conf.arg(name="")] = field(default_factory=RefineConfig)

    def run(self) -> None:
        ws = _existing_workspace(self.workspace, self.wait)
        result = reshoot.run_refine(ws, self.config, force=self.force)
        _print_notes(result)
        s = result.manifest["summary"]
        verb = "up to date (skipped)" if result.skipped else f"done in {result.manifest['timings_s']['total']:.1f} s"
        per_frame = f", {s['seconds_per_frame']:.2f} s a frame" if s.get("seconds_per_frame") else ""
        out.print(f"[bold]refine {verb}[/] ({s['refiner']}): {s['frames']} frames of '{s['path']}'{per_frame}")
        if s.get("guide_flicker") is not None:
            out.print(f"frame-to-frame change: guide {s['guide_flicker']:.2f}, refined {s['refined_flicker']:.2f} "
                      f"(8-bit levels); mean change from the guide {s['mean_change']:.2f}")
        out.print(f"comparison: {result.path / 'comparison.png'}")


@dataclass
class ExportCommand:
    """Export: write the shot as deliverables: PNG/EXR sequences, H.264 MP4 and ProRes MOV with timecode, the camera
    for Nuke (.chan), nerfstudio, USD and reshoot, a contact sheet and a side-by-side with the nearest real camera."""

    workspace: Path = Path("reshoot-workspace")
    """The workspace folder, with guide frames (or a refined shot)."""
    force: bool = False
    """Run again even if the inputs and options are unchanged."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    config: Annotated[ExportConfig, tyro.conf.arg(name="")] = field(default_factory=ExportConfig)

    def run(self) -> None:
        ws = _existing_workspace(self.workspace, self.wait)
        result = reshoot.run_export(ws, self.config, force=self.force)
        _print_notes(result)
        s = result.manifest["summary"]
        verb = "up to date (skipped)" if result.skipped else f"done in {result.manifest['timings_s']['total']:.1f} s"
        out.print(f"[bold]export {verb}[/]: '{s['name']}' from {s['source']}, frames {s['first_frame']}-"
                  f"{s['last_frame']} at {s['fps']} fps, starting at {s['start_timecode'] or 'no timecode'}")
        if s.get("colour", {}).get("exr"):
            container = ", ACES container (SMPTE ST 2065-4)" if s["colour"]["aces_container"] else ""
            out.print(f"EXR colourspace: {s['colour']['exr']} ({s['colour']['exr_compression']} compression"
                      f"{container})")
        for name in sorted(p.relative_to(result.path) for p in result.path.iterdir() if p.name != "manifest.json"):
            out.print(f"  {result.path / name}")


def _print_warnings(warnings_: list[str]) -> None:
    for text in warnings_:
        out.print(f"[yellow]warning:[/] {text}")


@dataclass
class RunCommand:
    """Run: the whole job, footage in, shot out: ingest, register, reconstruct, path, guide, refine, export. Settings
    from --config FILE (TOML or JSON, a table per stage) and flags (e.g. --reconstruct.steps 600); stages already up
    to date are skipped, so a stopped job goes on where it stopped."""

    sources: tyro.conf.Positional[tuple[Path, ...]] = ()
    """The set cameras' files (or give them as `sources` in --config)."""
    config: Path | None = None
    """A job config file (TOML or JSON); flags given as well override it."""
    force: bool = False
    """Run every stage again even if it is up to date."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    job: Annotated[JobConfig, tyro.conf.arg(name="")] = field(default_factory=JobConfig)

    def run(self) -> None:
        from dataclasses import replace

        job = replace(self.job, sources=self.sources) if self.sources else self.job

        def announce(index: int, total: int, name: str) -> None:
            console.print(f"[bold]\\[{index + 1}/{total}] {name}[/]: {reshoot.STAGE_DESCRIPTIONS[name]}")

        result = reshoot.run_job(job, force=self.force, on_stage=announce, wait=self.wait)
        for stage_result in result.stages.values():
            _print_notes(stage_result)
        table = Table(title=f"reshoot run: {result.workspace.root} ({result.seconds:.0f} s)")
        for col in ("stage", "", "took", "figures"):
            table.add_column(col)
        for row in result.summary():
            took = f"{row['seconds']:.1f} s" if row["seconds"] is not None else ""
            table.add_row(row["stage"], "ran" if row["ran"] else "up to date", took, row["figures"])
        out.print(table)
        shot = result.shot_dir
        movies = sorted(shot.glob("*.mp4")) + sorted(shot.glob("*.mov"))
        out.print(f"the shot: {movies[0] if movies else shot}")
        out.print(f"contact sheet: {shot / 'contact_sheet.png'}  beside the nearest real camera: "
                  f"{shot / 'side_by_side.png'}")


@dataclass
class EvalCommand:
    """Eval: reshoot a camera whose real footage is known (a set camera left out with `reconstruct --holdout`, the
    sample's hidden overhead camera, or any camera that never filmed for training, given by --truth-footage and
    --truth-calibration) and compare guide and refined frames with it: PSNR and SSIM over the whole frame, the set
    and the actor, flicker, and a verdict (usable / needs fixes / not usable); writes WS/eval/<camera>/report.html
    with a per-pixel error heat map."""

    workspace: Path = Path("reshoot-demo/workspace")
    """The workspace folder, with a scene."""
    wait: bool = False
    """If another reshoot process is writing the workspace, wait for it to finish (else stop at once, naming it)."""
    config: Annotated[EvalConfig, tyro.conf.arg(name="")] = field(default_factory=EvalConfig)

    def run(self) -> None:
        ws = _existing_workspace(self.workspace, self.wait)
        m = reshoot.run_eval(ws, self.config)
        _print_shot_scores(f"reshooting {m['camera']} against what it filmed ({len(m['guide']['per_frame'])} frames)",
                           {"guide frames": m["guide"], f"refined ({m['refiner']})": m["refined"]})
        unknown = ("none known (no --truth-masks)" if m.get("truth") else "none known (no clean plate)")
        out.print(f"actor region: {m['actor_region'] or unknown + ': the whole frame only'}")
        out.print(f"report: {ws.root / 'eval' / m['camera'] / 'report.html'}")


def _print_shot_scores(title: str, shots: dict[str, dict]) -> None:
    """A reshoot's figures against the truth (``reshoot.evaluation.evaluate.score_frames`` with its verdict), a row per shot:
    over the whole frame, then by region with the verdict; then the verdict on the refined shot (the last)."""
    table = Table(title=title)
    for col in ("shot", "PSNR", "SSIM", "flicker"):
        table.add_column(col)
    for label, s in shots.items():
        table.add_row(label, f"{s['psnr_db']:.2f} dB (min {s['psnr_min_db']:.2f})", f"{s['ssim']:.3f}",
                      flicker_text(s["flicker"]))
    out.print(table)
    table = Table(title="by region: the set, and the actor")
    for col in ("shot", "PSNR set", "PSNR actor", "SSIM set / actor", "verdict"):
        table.add_column(col)
    for label, s in shots.items():
        table.add_row(label, db_text(s.get("set_psnr_db")), db_text(s.get("actor_psnr_db")),
                      f"{ssim_text(s.get('set_ssim'))} / {ssim_text(s.get('actor_ssim'))}", s["verdict"])
    out.print(table)
    matched = [f"{label} {s['psnr_colour_matched_db']:.2f} dB" for label, s in shots.items()
               if s.get("psnr_colour_matched_db") is not None]
    if matched:
        out.print(f"whole frame with the camera's colours matched (one 3x4 colour map for the shot): {'; '.join(matched)}")
    last = list(shots.values())[-1]
    out.print(f"[bold]verdict[/] on the refined shot: [bold]{last['verdict']}[/] ({last['verdict_reason']})")


@dataclass
class BenchCommand:
    """Benchmarks: measure speed and accuracy on the synthetic shoot and the real data sets, print a table."""

    name: tyro.conf.Positional[Literal["ingest", "register", "raster", "reconstruct", "shot", "layouts", "panoptic",
                                       "gpu", "all"]] = "ingest"
    """Which benchmark: `ingest` (sync accuracy, calibration import, extraction throughput), `register` (pose accuracy
    on the synthetic shoot, Strecha fountain and caliscope), `raster` (CPU rasterizer speed and memory), `reconstruct`
    (training time, overhead and held-out PSNR/SSIM on the synthetic shoot, caliscope leave-one-out with `reshoot
    eval` of each camera), `shot` (guide frames' speed; guide frames and the classical refiner's shot against the
    synthetic shoot's ground-truth overhead camera: PSNR/SSIM/flicker), `layouts` (the demo's whole job on three sample
    shoots nobody tuned the defaults on: 3 cameras, 5 cameras, and 640x360; each overhead shot by region with its
    verdict; about 40 minutes), `panoptic` (real footage: four low Panoptic
    basketball cameras as the set, each of the five high ones reshot and scored by `reshoot eval` on the whole frame,
    the set and the person), `gpu` (the GPU check: gsplat's kernel build, reshoot's CPU rasterizer against
    gsplat's CUDA one, the default sample trained on the CPU and on CUDA and scored on the overhead camera, a
    Wan2.1-VACE-1.3B-sized refine model timed at 480p; about 8 minutes on one H100-class GPU; without CUDA it runs
    the CPU parts and says what needs CUDA; not part of `all`), or `all` of the others in one table (about two hours
    on 2 cores)."""
    data: Path = bench.DEFAULT_DATA
    """Folder with the real data sets (caliscope_4cam, bbc_audio_offset_timbl, ...)."""
    work: Path | None = None
    """Folder for the benchmark's files (if not given: a new temporary folder)."""

    def run(self) -> None:
        work = Path(self.work or tempfile.mkdtemp(prefix="reshoot-bench-"))
        names = ["ingest", "register", "raster", "reconstruct", "shot", "layouts", "panoptic"] if self.name == "all" \
            else [self.name]
        rows = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for name in names:
                found = self._rows(name, work)
                rows += [{**row, "benchmark": f"{name}: {row['benchmark']}"} for row in found] if self.name == "all" \
                    else found
        self._print(rows)
        atomic_write_json(work / "bench.json", {"benchmark": self.name, "data": str(self.data), "rows": rows})
        atomic_write_text(work / "bench.md", bench.rows_markdown(rows, f"reshoot bench {self.name}"))
        out.print(f"the table as Markdown: {work / 'bench.md'} (rows as JSON: {work / 'bench.json'})")

    def _rows(self, name: str, work: Path) -> list[dict]:
        if name == "raster":
            from reshoot_bench.raster import bench_rasterizer

            return bench_rasterizer()
        if name == "reconstruct":
            from reshoot_bench.reconstruct import bench_reconstruct

            return bench_reconstruct(self.data, work)
        if name == "shot":
            from reshoot_bench.shot import bench_shot

            return bench_shot(work)
        if name == "layouts":
            from reshoot_bench.layouts import bench_layouts

            return bench_layouts(work)
        if name == "panoptic":
            from reshoot_bench.panoptic import bench_panoptic

            return bench_panoptic(self.data, work)
        if name == "gpu":
            from reshoot_bench.gpu import bench_gpu

            return bench_gpu(work)
        return {"ingest": bench.bench_ingest, "register": bench.bench_register}[name](self.data, work)

    def _print(self, rows: list[dict]) -> None:
        table = Table(title=f"reshoot bench {self.name}")
        for col in ("benchmark", "result", "target", "ok", "detail"):
            table.add_column(col, overflow="fold")
        for row in rows:
            ok = {True: "[green]yes[/]", False: "[red]NO[/]", None: "-"}[row["pass"]]
            table.add_row(row["benchmark"], row["result"], row.get("target", ""), ok, row.get("detail", ""))
        Console(width=max(out.width, 160)).print(table)


@dataclass
class StatusCommand:
    """Show each stage of a workspace: complete, stale (a stage it depends on, directly or not, or its footage changed
    since it ran), broken (outputs missing or changed) or missing; runs going on or interrupted, and checkpoints a
    re-run resumes from."""

    workspace: Path = Path("reshoot-demo/workspace")
    """The workspace folder."""
    verify: bool = False
    """Also hash every output and compare it with the manifest (slower; finds files changed after the stage ran)."""

    def run(self) -> None:
        ws = _existing_workspace(self.workspace)
        table = Table(title=f"workspace {ws.root}")
        for col in ("stage", "state", "finished", "took", "why / what else"):
            table.add_column(col, overflow="fold")
        rows = ws.status(verify=self.verify)
        for row in rows:
            took = f"{row['total_s']:.1f} s" if row.get("total_s") is not None else ""
            colour = {"complete": "green", "stale": "yellow", "broken": "red"}.get(row["state"], "dim")
            table.add_row(row["stage"], f"[{colour}]{row['state']}[/]", row.get("finished_at", ""), took,
                          "; ".join(_status_details(row)))
        out.print(table)
        out.print(f"sources: {len(ws.info.get('sources', []))} file(s)")
        todo = [r["stage"] for r in rows if r["state"] != "complete"]
        if todo:
            out.print(f"to bring it up to date, run in order (with the settings you used): "
                      f"{', '.join(f'reshoot {s}' for s in todo)} --workspace {ws.root}; or `reshoot run` again "
                      "for a job")


def _status_details(row: dict) -> list[str]:
    """The reasons and activity of one status row, in words."""
    details = list(row.get("stale_because") or [])
    for key, what in (("missing_files", "missing"), ("changed_files", "changed since it ran")):
        files = row.get(key) or []
        if files:
            details.append(f"{len(files)} output file(s) {what}: {', '.join(files[:3])}{' ...' if len(files) > 3 else ''}")
    if row.get("running"):
        details.append(f"running now (process {row['running']})")
    elif row.get("interrupted"):
        details.append("a run was interrupted (nothing of it was published)")
    if row.get("resume"):
        details.append(f"a re-run resumes from {', '.join(row['resume'])}")
    details += row.get("notes") or []
    return details


def _print_notes(result) -> None:
    """What a stage's run made a person need to know (sources replaced, later stages now out of date)."""
    for note in getattr(result, "notes", ()):
        console.print(f"[yellow]warning:[/] {note}")


def _existing_workspace(path: Path, wait: bool = False) -> reshoot.Workspace:
    """Open a workspace that must exist already (never create one as a side effect of a failing command)."""
    if not (path / "workspace.json").is_file():
        raise reshoot.StageError(f"{path} is not a reshoot workspace (no workspace.json); make one with "
                                 "`reshoot ingest SOURCES... --workspace PATH`")
    return reshoot.Workspace(path, wait=wait)


COMMANDS = {"sample": SampleCommand, "demo": DemoCommand, "ingest": IngestCommand, "register": RegisterCommand,
            "reconstruct": ReconstructCommand, "path": PathCommand, "guide": GuideCommand,
            "refine": RefineCommand, "export": ExportCommand, "run": RunCommand,
            "eval": EvalCommand,
            "view": ViewCommand,
            "batch": BatchCommand,
            "status": StatusCommand,
            "bench": BenchCommand}


def _print_cameras(cameras: list[dict]) -> None:
    table = Table()
    for col in ("camera", "role", "file", "frames", "lens", "start offset", "start TC"):
        table.add_column(col)
    survey = [c for c in cameras if c["role"] == "survey"]
    for c in (c for c in cameras if c["role"] != "survey"):
        table.add_row(c["camera_id"], c["role"], c["file"], str(c["frame_count"]), f"{c['focal_mm']:.1f} mm",
                      f"{c['start_offset_s']:+.4f} s", c["start_timecode"])
    out.print(table)
    if survey:
        out.print(f"set survey: {len(survey)} stills of the empty set in survey/ (for registration)")


def _overview() -> None:
    out.print(f"[bold]reshoot[/] {reshoot.__version__}: recover a shot nobody filmed from the cameras that were there.\n")
    out.print("usage: reshoot COMMAND [--help] [OPTIONS]\n")
    table = Table(title="commands", show_header=False, box=None)
    for name, command in COMMANDS.items():
        table.add_row(f"  [bold]{name}[/]", " ".join((command.__doc__ or "").split()))
    out.print(table)
    stages = Table(title="\npipeline stages (each writes WS/<stage>/ and a manifest)", show_header=False, box=None)
    for name, description in reshoot.STAGE_DESCRIPTIONS.items():
        stages.add_row(f"  [bold]{name}[/]", description)
    out.print(stages)
    options = Table(title="\noptions of every command (before or after its name)", show_header=False, box=None)
    options.add_row("  [bold]--progress MODE[/]", "how long steps show their progress on stderr: auto (bars on a "
                    "terminal, else plain lines), rich (bars), plain (lines a render manager can follow, see "
                    "docs/farm.md), json (a JSON object a line) or off")
    options.add_row("  [bold]--json-progress[/]", "the same as --progress json")
    out.print(options)
    out.print("\nDocs: docs/README.md. Set RESHOOT_DEBUG=1 to see tracebacks, RESHOOT_QUIET=1 to hide progress.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        argv, progress = _take_progress_flags(argv)
    except ValueError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    previous = os.environ.get("RESHOOT_PROGRESS")
    if progress is not None:  # for the library, and any reshoot process this one starts
        os.environ["RESHOOT_PROGRESS"] = progress
    try:
        reshoot.progress.progress_mode(), reshoot.progress.progress_interval_s()  # a wrong setting stops us now
    except ValueError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    try:
        return _run_command(argv)
    finally:
        if previous is None:
            os.environ.pop("RESHOOT_PROGRESS", None)
        else:
            os.environ["RESHOOT_PROGRESS"] = previous


def _take_progress_flags(argv: list[str]) -> tuple[list[str], str | None]:
    """The arguments without ``--progress MODE`` (``--progress=MODE``) and ``--json-progress``, given anywhere, and
    the mode they chose (``None``: none given). They are read here, not by tyro, because every command takes them."""
    rest, mode = [], None
    args = iter(argv)
    for arg in args:
        if arg == "--json-progress":
            mode = "json"
        elif arg == "--progress" or arg.startswith("--progress="):
            mode = arg.partition("=")[2] if "=" in arg else next(args, "")
            if mode not in reshoot.progress.MODES:
                raise ValueError(f"--progress {mode!r}: give one of {', '.join(reshoot.progress.MODES)}")
        else:
            rest.append(arg)
    return rest, mode


def _run_command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        _overview()
        return 0
    if argv[0] == "--version":
        out.print(reshoot.__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        console.print(f"[red]error:[/] unknown command {name!r}. Commands: {', '.join(COMMANDS)}")
        return 2
    cls = COMMANDS[name]
    if name == "path" and rest and not rest[0].startswith("-"):  # `reshoot path overhead ...`: the kind first
        rest = ["--kind", rest[0], *rest[1:]]
    default = None
    if "preset" in cls.__dataclass_fields__ and name == "sample":
        preset = _peek_option(rest, "--preset", "default")
        if preset not in PRESETS:
            console.print(f"[red]error:[/] unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
            return 2
        default = SampleCommand(preset=preset, config=PRESETS[preset])
    if name == "run" and _peek_option(rest, "--config", ""):
        config_file = Path(_peek_option(rest, "--config", ""))
        try:
            default = RunCommand(config=config_file, job=load_job_config(config_file))
        except (OSError, ValueError) as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}")
            return 1
    previous = signal.signal(signal.SIGTERM, _terminated)  # a farm's or a shell's kill ends like Ctrl-C
    try:
        tyro.cli(cls, args=rest, prog=f"reshoot {name}", default=default).run()
    except KeyboardInterrupt:
        if os.environ.get("RESHOOT_DEBUG", "") in ("1", "true", "yes"):
            raise
        console.print(f"[red]interrupted:[/] {_interrupted_text()}")
        return 130
    except (*reshoot.ReshootError, OSError, ValueError) as exc:  # FootageError and SyncError are ValueErrors
        if os.environ.get("RESHOOT_DEBUG", "") in ("1", "true", "yes"):
            raise
        console.print(f"[red]error:[/] {escape(str(exc))}")  # a message's [brackets] are text, not markup
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupted_text() -> str:
    """What an interrupted command kept and how to go on."""
    stopped = reshoot.workspace.last_interrupted
    if not stopped:
        return "stopped; nothing half-written was published. Run the same command again to go on."
    kept = (f"; its checkpoint is kept ({', '.join(stopped['kept'])}) and the same command resumes from it"
            if stopped["kept"] else "; run the same command again to redo it")
    return (f"{stopped['stage']} was stopped before it finished in {stopped['workspace']}: nothing of it was "
            f"published and the stages before it are kept{kept}.")


def _peek_option(args: list[str], flag: str, default: str) -> str:
    for idx, arg in enumerate(args):
        if arg == flag and idx + 1 < len(args):
            return args[idx + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


if __name__ == "__main__":
    sys.exit(main())

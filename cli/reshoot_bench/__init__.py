"""Benchmarks: the speed and quality numbers the issues ask for, measured on real and synthetic data.

Each ``bench_*`` function returns rows (dicts) for one table; ``reshoot bench NAME`` prints them.
Real data is read from ``../shared/data`` beside the repository (or ``--data``); a data set that is
absent gives a row saying so, never a number.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from reshoot.cameras import Cameras
from reshoot.evaluation.scores import pose_errors, sample_registration_errors
from reshoot.media import write_video
from reshoot.sample import PRESETS, make_sample_shoot
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages.register import RegisterConfig, RegistrationError, read_frame_poses, run_register
from reshoot.workspace import Workspace

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"  # cli/reshoot_bench/ -> ../shared/data
_BBC_TRUTH_S = {"timbl_2": 12.254, "timbl_3": 12.223}  # GROUND_TRUTH.txt: where each clip starts in timbl_1


def rows_markdown(rows: list[dict[str, Any]], title: str) -> str:
    """A benchmark table as Markdown (what ``reshoot bench`` also prints), for docs and notes."""
    def cell(value: Any) -> str:
        return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")

    lines = [f"## {title}", "", "| benchmark | result | target | ok | detail |", "|---|---|---|---|---|"]
    for row in rows:
        ok = {True: "yes", False: "NO", None: "-"}[row.get("pass")]
        lines.append("| " + " | ".join(cell(v) for v in (row["benchmark"], row["result"], row.get("target", ""), ok,
                                                           row.get("detail", ""))) + " |")
    return "\n".join(lines) + "\n"


def bench_ingest(data: Path = DEFAULT_DATA, work: Path | None = None) -> list[dict[str, Any]]:
    """Sync accuracy (synthetic and BBC audio), caliscope ingest with calibration, extraction throughput."""
    work = Path(work or tempfile.mkdtemp(prefix="reshoot-bench-"))
    rows = _sample_sync_rows(work)
    rows += _bbc_rows(Path(data) / "bbc_audio_offset_timbl", work)
    rows += _caliscope_rows(Path(data) / "caliscope_4cam", work)
    return rows


def _sample_sync_rows(work: Path) -> list[dict[str, Any]]:
    rows = []
    for label, subframe in (("whole-frame offsets", False), ("sub-frame offsets", True)):
        config = replace(PRESETS["default"], subframe_offsets=subframe, frame_count=24)
        shoot = make_sample_shoot(work / f"sample-{'sub' if subframe else 'whole'}", config)
        start = time.perf_counter()
        result = run_ingest(Workspace(work / f"ws-sample-{'sub' if subframe else 'whole'}"),
                            list(shoot.videos.values()), IngestConfig(sync="audio", max_frames=4), force=True)
        took = time.perf_counter() - start
        truth = {c["camera_id"]: c["start_offset_s"] for c in shoot.ground_truth["cameras"] if c["role"] == "set"}
        found = result.manifest["summary"]["offsets_s"]
        errors = [abs((found[c] - found["cam0"]) - (truth[c] - truth["cam0"])) * 1e3 for c in found if c != "cam0"]
        ratios = [v["peak_ratio"] for v in result.manifest["summary"]["sync"]["cameras"].values() if v["peak_ratio"]]
        rows.append({"benchmark": f"audio sync, synthetic shoot ({label})",
                     "result": f"max error {max(errors):.4f} ms over {len(errors)} cameras (against cam0)",
                     "detail": f"errors ms {[round(e, 4) for e in errors]}; peak ratios >= {min(ratios):.1f}; "
                               f"ingest {took:.1f} s", "target": "< 1 ms", "pass": bool(max(errors) < 1.0)})
    return rows


def _bbc_rows(folder: Path, work: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return [{"benchmark": "audio sync, BBC timbl clips", "result": f"skipped: {folder} absent", "pass": None}]
    from reshoot.media import read_audio

    videos = []
    for name in ("timbl_1", "timbl_2", "timbl_3"):  # semi-synthetic: each clip muxed onto a video track
        samples, rate = read_audio(folder / f"{name}.mp3")
        frames = int(len(samples) / rate * 25)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        path = work / "bbc" / f"{name}.mov"
        path.parent.mkdir(parents=True, exist_ok=True)
        grey = np.full((64, 64, 3), 90, np.uint8)
        write_video(path, (grey for _ in range(frames)), 25, pcm, rate)
        videos.append(path)
    result = run_ingest(Workspace(work / "ws-bbc"), videos, IngestConfig(sync="audio", max_frames=2), force=True)
    rows = []
    for name, truth in _BBC_TRUTH_S.items():
        info = result.manifest["summary"]["sync"]["cameras"][name]
        error_ms = (info["offset_s"] - truth) * 1e3
        rows.append({"benchmark": f"audio sync, BBC {name} vs timbl_1 (muxed onto video)",
                     "result": f"{info['offset_s']:.4f} s, error {error_ms:+.2f} ms",
                     "detail": f"truth {truth} s; peak ratio {info['peak_ratio']:.1f}", "target": "< 10 ms",
                     "pass": bool(abs(error_ms) < 10)})
    return rows


def _caliscope_rows(folder: Path, work: Path) -> list[dict[str, Any]]:
    clips = folder / "post_optimization" / "calibration" / "extrinsic"
    if not clips.is_dir():
        return [{"benchmark": "caliscope 4-camera ingest", "result": f"skipped: {folder} absent", "pass": None}]
    videos = sorted(clips.glob("cam_*.mp4"))
    rows = []
    for image_format in ("png", "jpg"):
        config = IngestConfig(sync="none", image_format=image_format,
                              calibration=folder / "post_optimization" / "camera_array.toml")
        result = run_ingest(Workspace(work / f"ws-caliscope-{image_format}"), videos, config, force=True)
        summary, timings = result.manifest["summary"], result.manifest["timings_s"]
        written = summary["cameras"] * summary["frames"]
        layout_ok = all(len(list((result.path / "frames" / f"cam_{k}").glob(f"*.{image_format}"))) == summary["frames"]
                        for k in range(4))
        rows.append({"benchmark": f"extraction throughput, 4 x 1280x720 ({image_format})",
                     "result": f"{written / timings['extract']:.1f} frames/s",
                     "detail": f"{written} frames in {timings['extract']:.2f} s (decode + write, 2 cores)",
                     "target": "measured", "pass": layout_ok})
    cams = json.loads((result.path / "calibration" / "cameras.json").read_text())["cameras"]
    rows.append({"benchmark": "caliscope 4-camera ingest + camera_array.toml import",
                 "result": f"{len(videos)} cameras, {summary['frames']} synced frames each, rig layout",
                 "detail": f"imported {[c['camera_id'] for c in cams]}, fx {[round(c['K'][0][0], 1) for c in cams]}",
                 "target": "all 4 cameras", "pass": len(cams) == 4 and layout_ok})
    return rows


def bench_register(data: Path = DEFAULT_DATA, work: Path | None = None) -> list[dict[str, Any]]:
    """Registration accuracy: the synthetic shoot (and how the actor is handled), Strecha fountain, caliscope."""
    work = Path(work or tempfile.mkdtemp(prefix="reshoot-bench-"))
    rows = _synthetic_register_rows(work)
    rows += _strecha_rows(Path(data) / "strecha_fountain_P11", work)
    rows += _caliscope_register_rows(Path(data) / "caliscope_4cam", work)
    return rows


def _synthetic_register_rows(work: Path) -> list[dict[str, Any]]:
    shoot = make_sample_shoot(work / "sample-default", PRESETS["default"])
    ws = Workspace(work / "ws-register-synthetic")
    run_ingest(ws, list(shoot.videos.values()), IngestConfig(sync="timecode"))
    rows = []
    for dynamic in ("plate", "mask", "none", "instants"):
        start = time.perf_counter()
        result = run_register(ws, RegisterConfig(survey=shoot.root / "survey", dynamic=dynamic), force=True)
        took = time.perf_counter() - start
        errors = sample_registration_errors(result.path, shoot)  # aligned on set cameras + survey stills
        summary = result.manifest["summary"]
        rows.append({
            "benchmark": f"register synthetic shoot, actor handled by '{dynamic}'",
            "result": f"{len(errors.camera_ids)}/4 cameras; rotation max {errors.rotation_deg.max():.3f} deg, "
                      f"centre max {errors.centre_error_pct.max():.2f} % of the set",
            "detail": f"{took:.1f} s; reprojection {summary['mean_reprojection_error_px']:.2f} px; "
                      f"{summary['points']} points; survey {summary['survey_registered']} stills",
            "target": "<= 0.2 deg, <= 1 %",
            "pass": bool(len(errors.camera_ids) == 4 and errors.rotation_deg.max() <= 0.2
                         and errors.centre_error_pct.max() <= 1.0)})
    return rows


def _strecha_truth(folder: Path) -> Cameras:
    """Strecha's ground truth: K, distortion, R (camera-to-world), C, size per image (``.camera`` files)."""
    ids, poses, Ks, sizes = [], [], [], []
    for path in sorted((folder / "gt_dense_cameras").glob("*.camera")):
        values = np.array(path.read_text().split(), dtype=np.float64)
        K, R, C, size = values[:9].reshape(3, 3), values[12:21].reshape(3, 3), values[21:24], values[24:26]
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = R.T, -R.T @ C
        ids.append(f"images/{int(path.name.split('.')[0]):06d}")
        poses.append(pose)
        Ks.append(K)  # only poses are compared, so K's pixel origin does not matter here
        sizes.append(size)
    return Cameras(tuple(ids), np.array(Ks), np.zeros((len(ids), 5)), np.array(poses), np.array(sizes))


def _strecha_rows(folder: Path, work: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return [{"benchmark": "register Strecha fountain P11", "result": f"skipped: {folder} absent", "pass": None}]
    ws = Workspace(work / "ws-strecha")
    # the 11 photos as one moving camera (an image sequence, 1 frame a second): one pose per photo
    run_ingest(ws, [folder / "images"], IngestConfig(sync="none", sequence_fps="1"))
    start = time.perf_counter()
    result = run_register(ws, RegisterConfig(camera_motion="moving", refine_principal_point=True), force=True)
    took = time.perf_counter() - start
    errors = pose_errors(read_frame_poses(result.path), _strecha_truth(folder))
    return [{"benchmark": "register Strecha fountain P11 (11 photos, laser-scan truth)",
             "result": f"{len(errors.camera_ids)}/11 views; rotation median {np.median(errors.rotation_deg):.3f} deg, "
                       f"centre median {np.median(errors.centre_error_pct):.3f} % of the camera extent",
             "detail": f"max {errors.rotation_deg.max():.3f} deg / {errors.centre_error_pct.max():.3f} %; {took:.0f} s; "
                       f"reprojection {result.manifest['summary']['mean_reprojection_error_px']:.2f} px",
             "target": "11/11, < 0.1 deg",
             "pass": bool(len(errors.camera_ids) == 11 and np.median(errors.rotation_deg) < 0.1)}]


def ingest_caliscope(folder: Path, ws: Workspace) -> bool:
    """Ingest caliscope's synced 4-camera clips with their calibration into ``ws``; False if the data is absent."""
    clips = folder / "post_optimization" / "calibration" / "extrinsic"
    if not clips.is_dir():
        return False
    run_ingest(ws, sorted(clips.glob("cam_*.mp4")), IngestConfig(
        sync="none", image_format="jpg", calibration=folder / "post_optimization" / "camera_array.toml"))
    return True


def _caliscope_register_rows(folder: Path, work: Path) -> list[dict[str, Any]]:
    """caliscope's 4 webcams: SfM (plate alone, and with the moving board matched at synced instants) against the
    imported calibration, and triangulation with it."""
    ws = Workspace(work / "ws-caliscope-register")
    if not ingest_caliscope(folder, ws):
        return [{"benchmark": "register caliscope 4 cameras", "result": f"skipped: {folder} absent", "pass": None}]
    known = Cameras.from_json(json.loads((ws.stage_dir("ingest") / "calibration" / "cameras.json").read_text()))
    rows = []
    # webcams 0.4-1.4 m apart looking 2-4 m away: lower COLMAP's 16-degree first-pair angle
    for mode, dynamic in (("solve", "plate"), ("solve", "instants"), ("prior", "instants"), ("triangulate", "plate"),
                          ("triangulate", "instants")):
        config = RegisterConfig(calibration=mode, dynamic=dynamic, plate_frames=12, allow_partial=True,
                                init_min_tri_angle_deg=4.0)
        start = time.perf_counter()
        try:
            result = run_register(ws, config, force=True)
        except RegistrationError as exc:
            rows.append({"benchmark": f"register caliscope ({mode}, {dynamic})", "result": f"failed: {exc}"[:300],
                         "target": "measured", "pass": False})
            continue
        took = time.perf_counter() - start
        summary = result.manifest["summary"]
        detail = (f"{took:.0f} s; reprojection {summary['mean_reprojection_error_px']:.2f} px, "
                  f"{summary['points']} points")
        if mode == "triangulate":
            rows.append({"benchmark": f"register caliscope, known calibration, triangulate only ({dynamic})",
                         "result": f"reprojection {summary['mean_reprojection_error_px']:.2f} px, "
                                   f"{summary['points']} points", "detail": detail,
                         "target": "measured", "pass": summary["points"] > 0})
            continue
        estimated = Cameras.from_json(json.loads((result.path / "cameras.json").read_text()))
        if len(estimated) >= 3:
            errors = pose_errors(estimated, known)
            text = (f"{len(estimated)}/4 cameras; vs calibration: rotation max {errors.rotation_deg.max():.2f} deg, "
                    f"centre max {errors.centre_error_pct.max():.1f} % of the rig")
        else:
            text = f"only {len(estimated)}/4 cameras registered: {summary['registered_cameras']}"
        rows.append({"benchmark": f"register caliscope by SfM ({mode}, {dynamic}) vs its imported calibration",
                     "result": text, "detail": detail, "target": "measured", "pass": len(estimated) == 4})
    return rows
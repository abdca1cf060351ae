"""The synthetic shoot: set cameras that roll at different moments, plus a held-out overhead camera.

Output folder (``reshoot sample --out DIR``)::

    DIR/
      cam0.mov ... camN.mov      the set cameras: H.264 video + 16-bit PCM audio + start timecode
      ground_truth.json          cameras (reshoot's convention), start offsets, fps, clap, actor path
      ground_truth/overhead/     the missing shot's true frames, 000000.png ... (never part of footage)
      ground_truth/overhead_depth.npz   its depth (metres, float16), one array per frame
      ground_truth/actor_masks.npz      per camera, where the actor is in every frame (bit-packed)
      survey/                    set survey stills of the empty set, 000.png ... (as a VFX data wrangler
                                 shoots them): they bridge the set cameras for registration
      set_scan.ply               a LiDAR-like scan of the empty set: coloured points on its surfaces, in the
                                 sample's world (reconstruct --set-scan aligns it to the registered world)
      contact_sheet.png          every camera at a few synced instants

World time: seconds, the shot starts at 0. Camera ``c`` captures frame ``k`` at world time
``start_offset_s[c] + k / fps``; ``start_offset_s`` is negative (cameras roll before the shot).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reshoot.atomic import atomic_write_json, replace_dir
from reshoot.cameras import Cameras, focal_px_from_mm, look_at
from reshoot.media import write_video
from reshoot.progress import progress_stage, track
from reshoot.sample.audio import make_world_sound
from reshoot.sample.render import MeshRenderer
from reshoot.sample.scene import (SET_HALF_SIZE_M, WALL_HEIGHT_M, ActorMotion, TexturedMesh, build_actor, build_set,
                                  landmarks)
from reshoot.viz import contact_sheet, save_png

SENSOR_WIDTH_MM = 36.0
GROUND_TRUTH = "ground_truth.json"
_FORMAT_VERSION = 3  # 2: set survey stills; 3: set scan
SET_SCAN_POINTS = 80_000  #: points in the sample's set scan


@dataclass(frozen=True)
class SampleConfig:
    """How the synthetic shoot is made. Deterministic for a given config."""

    n_cameras: int = 4
    """Set cameras, spread around the set; the held-out overhead camera comes on top."""
    frame_count: int = 48
    """Frames in the shot (the overhead ground truth has exactly these)."""
    width: int = 320
    """Image width in pixels (even: H.264 needs it)."""
    height: int = 180
    """Image height in pixels (even)."""
    fps: float = 24.0
    """Frame rate of every camera."""
    seed: int = 0
    """Seed for textures, camera placement, lenses, start offsets and audio noise."""
    max_lead_s: float = 1.0
    """Cameras start rolling up to this long before the shot, each a different whole number of frames
    (at least one per camera)."""
    subframe_offsets: bool = False
    """Start offsets at arbitrary times instead of whole frames (as unsynced, non-genlocked cameras)."""
    distortion: bool = True
    """Give the set cameras mild radial lens distortion (recorded in the ground truth)."""
    supersample: int = 1
    """Render at this multiple of the resolution and downsample (anti-aliasing; cost grows with its square)."""
    texture_px: int = 512
    """Side of the set's procedural textures."""
    sample_rates_hz: tuple[int, ...] = (48_000, 48_000, 44_100, 48_000)
    """Audio sample rate per camera (repeated when there are more cameras)."""
    shot_start_timecode: str = "01:00:00:00"
    """Timecode of the shot's first frame; each camera's start timecode follows from its offset."""
    survey_stills: int = 24
    """Set survey stills of the empty set, taken walking around it (0: none). Set cameras far apart share too
    little for SfM on their own; the survey bridges them, as on a real set."""
    survey_width: int = 480
    """Survey still width in pixels."""
    survey_height: int = 270
    """Survey still height in pixels."""

    def __post_init__(self) -> None:
        for name in ("width", "height", "survey_width", "survey_height"):
            value = getattr(self, name)
            if value < 32 or value % 2:
                raise ValueError(f"SampleConfig.{name} must be even and at least 32 (H.264), got {value}")
        if self.n_cameras < 1 or self.frame_count < 2:
            raise ValueError(f"SampleConfig needs n_cameras >= 1 and frame_count >= 2, got "
                             f"{self.n_cameras} and {self.frame_count}")
        if self.fps <= 0:
            raise ValueError(f"SampleConfig.fps must be > 0, got {self.fps}")
        if int(self.max_lead_s * self.fps) < self.n_cameras:
            raise ValueError(
                f"SampleConfig.max_lead_s = {self.max_lead_s} s holds {int(self.max_lead_s * self.fps)} whole frames, "
                f"too few for {self.n_cameras} cameras to start at different frames; raise it to at least "
                f"{self.n_cameras / self.fps:.3f} s")
        if not re.fullmatch(r"\d\d:[0-5]\d:[0-5]\d:\d\d", self.shot_start_timecode) or \
                int(self.shot_start_timecode[-2:]) >= round(self.fps):
            raise ValueError(f"SampleConfig.shot_start_timecode must be HH:MM:SS:FF with FF < {round(self.fps)}, "
                             f"got {self.shot_start_timecode!r}")


#: Named presets: ``default`` for the demo; ``small``, the smallest shoot that registers (a few seconds);
#: ``tiny`` for tests of stages before registration.
PRESETS = {
    "default": SampleConfig(),
    "small": SampleConfig(n_cameras=3, frame_count=6, width=160, height=90, max_lead_s=0.25, texture_px=256,
                          survey_stills=12, survey_width=320, survey_height=180),
    "tiny": SampleConfig(n_cameras=2, frame_count=8, width=96, height=54, max_lead_s=0.25, texture_px=128,
                         survey_stills=12, survey_width=192, survey_height=108),
}


@dataclass(frozen=True)
class SampleShoot:
    """A written sample shoot: where its files are and its ground truth."""

    root: Path
    videos: dict[str, Path]  #: set camera id -> video file
    ground_truth: dict[str, Any] = field(repr=False)
    skipped: bool = False  #: True when an identical shoot was already there

    @property
    def cameras(self) -> Cameras:
        """The set cameras."""
        return Cameras.from_json({"cameras": [c for c in self.ground_truth["cameras"] if c["role"] == "set"]})

    @property
    def survey(self) -> Cameras:
        """The set survey stills' cameras (``survey/000.png`` ... in order)."""
        return Cameras.from_json({"cameras": [c for c in self.ground_truth["cameras"] if c["role"] == "survey"]})

    @property
    def overhead(self) -> Cameras:
        """The held-out overhead camera (one camera)."""
        return Cameras.from_json({"cameras": [c for c in self.ground_truth["cameras"] if c["role"] == "overhead"]})


def load_sample_shoot(root: Path) -> SampleShoot:
    """Read a sample shoot written by :func:`make_sample_shoot`."""
    root = Path(root)
    gt_path = root / GROUND_TRUTH
    if not gt_path.is_file():
        raise FileNotFoundError(f"{root} holds no {GROUND_TRUTH}: make one with `reshoot sample --out {root}`")
    gt = json.loads(gt_path.read_text())
    videos = {c["camera_id"]: root / c["file"] for c in gt["cameras"] if c["role"] == "set"}
    return SampleShoot(root, videos, gt)


def make_sample_shoot(out_dir: Path, config: SampleConfig = SampleConfig(), force: bool = False) -> SampleShoot:
    """Render the synthetic shoot into ``out_dir`` (created; written whole or not at all).

    An existing shoot made with the same config is kept and returned (``skipped=True``) unless
    ``force``. A non-empty ``out_dir`` that is not a reshoot sample is never touched.
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        existing = out_dir / GROUND_TRUTH
        if not existing.is_file() or "reshoot_sample" not in json.loads(existing.read_text()):
            raise FileExistsError(f"{out_dir} is not empty and is not a reshoot sample shoot; "
                                  "choose an empty or new folder for --out")
        previous = load_sample_shoot(out_dir)
        same = previous.ground_truth["config"] == _config_json(config)
        current = previous.ground_truth["reshoot_sample"] == _FORMAT_VERSION and _is_complete(previous)
        if same and current and not force:
            return SampleShoot(previous.root, previous.videos, previous.ground_truth, skipped=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        with progress_stage("sample"):
            render_sample_shoot(tmp, config)
        replace_dir(tmp, out_dir, out_dir.parent / f".{out_dir.name}.trash")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out_dir.parent / f".{out_dir.name}.trash", ignore_errors=True)
    return load_sample_shoot(out_dir)


def _is_complete(shoot: SampleShoot) -> bool:
    """Every file the ground truth names is there (a user may have deleted one)."""
    frames = shoot.ground_truth["shot"]["frame_count"]
    overhead = shoot.root / "ground_truth" / "overhead"
    return (all(p.is_file() and p.stat().st_size > 0 for p in shoot.videos.values())
            and all((overhead / f"{k:06d}.png").is_file() for k in range(frames))
            and (shoot.root / "ground_truth" / "actor_masks.npz").is_file()
            and (shoot.root / "set_scan.ply").is_file()
            and all((shoot.root / c["file"]).is_file() for c in shoot.ground_truth["cameras"] if c["role"] == "survey"))


def _write_set_scan(meshes: list[TexturedMesh], path: Path, rng: np.random.Generator) -> None:
    """The empty set as a scanner gives it: coloured points spread evenly on its surfaces (world metres)."""
    import trimesh
    from PIL import Image

    from reshoot.splat.pointcloud import write_points_ply
    from reshoot.splat.scan import sample_surface_points

    surfaces = [trimesh.Trimesh(m.vertices @ m.pose[:3, :3].T + m.pose[:3, 3], m.faces, process=False,
                                visual=trimesh.visual.TextureVisuals(uv=m.uv, image=Image.fromarray(m.texture)))
                for m in meshes]
    xyz, rgb, _ = sample_surface_points(surfaces, SET_SCAN_POINTS, rng)
    write_points_ply(path, xyz, rgb)


def render_sample_shoot(out: Path, config: SampleConfig) -> dict[str, Any]:
    """Render the shoot into the existing folder ``out`` (not atomic: see :func:`make_sample_shoot`)."""
    rng = np.random.default_rng(config.seed)
    set_cameras, lenses_mm = _set_cameras(config, rng)
    overhead = _overhead_camera(config)
    leads = _lead_frames(config, rng)
    tails = rng.integers(0, max(1, int(config.fps * 0.5)), config.n_cameras)
    motion = ActorMotion()
    start_s = [-lead / config.fps for lead in leads]
    counts = [int(round(lead)) + config.frame_count + int(tail) for lead, tail in zip(leads, tails)]
    clap_s = max(start_s) + 0.15
    shot_s = config.frame_count / config.fps
    end_s = max(s + n / config.fps for s, n in zip(start_s, counts)) + 0.1
    steps_per_s = 2 * motion.cadence_hz  # a footfall per step, two steps per stride
    steps = [(k + 0.5) / steps_per_s for k in range(int(np.floor(min(start_s) * steps_per_s)) - 1,
                                                    int(np.ceil(end_s * steps_per_s)) + 1)]
    sound = make_world_sound(min(start_s) - 0.1, end_s, clap_s, steps, rng)

    set_meshes = build_set(rng, config.texture_px)
    _write_set_scan(set_meshes, out / "set_scan.ply", np.random.default_rng(config.seed + 1))
    renderer = MeshRenderer(set_meshes, build_actor(rng), supersample=config.supersample)
    masks: dict[str, np.ndarray] = {}
    entries, sheet_frames = [], {}
    try:
        for idx, camera_id in enumerate(set_cameras.camera_ids):
            rate = config.sample_rates_hz[idx % len(config.sample_rates_hz)]
            times = start_s[idx] + np.arange(counts[idx]) / config.fps
            views = _render_times(renderer, set_cameras, idx, motion, times, f"rendering {camera_id}")
            audio = sound.record(start_s[idx], counts[idx] / config.fps, rate, gain=0.5 + 0.5 * rng.random(),
                                 noise_db=-50.0, rng=rng)
            timecode = _shift_timecode(config.shot_start_timecode, -int(round(leads[idx])), config.fps)
            frames = [v.rgb for v in views]
            write_video(out / f"{camera_id}.mov", frames, config.fps, audio, rate, timecode=timecode)
            masks[camera_id] = np.packbits(np.stack([v.actor_mask for v in views]), axis=-1)
            sheet_frames[camera_id] = (frames, times)
            entries.append({**set_cameras.select([camera_id]).to_json()["cameras"][0], "role": "set",
                            "file": f"{camera_id}.mov", "focal_mm": lenses_mm[idx],
                            "sensor_width_mm": SENSOR_WIDTH_MM, "start_offset_s": start_s[idx],
                            "frame_count": counts[idx], "start_timecode": timecode, "sample_rate_hz": rate})
        entries += _render_survey(renderer, out / "survey", config)
        times = np.arange(config.frame_count) / config.fps
        views = _render_times(renderer, overhead, 0, motion, times, "rendering overhead (ground truth)")
    finally:
        renderer.close()
    gt_dir = out / "ground_truth"
    for k, view in enumerate(views):
        save_png(view.rgb, gt_dir / "overhead" / f"{k:06d}.png")
    np.savez_compressed(gt_dir / "overhead_depth.npz", depth_m=np.stack([v.depth_m for v in views]).astype(np.float16))
    masks["overhead"] = np.packbits(np.stack([v.actor_mask for v in views]), axis=-1)
    np.savez_compressed(gt_dir / "actor_masks.npz", **masks)
    sheet_frames["overhead (held out)"] = ([v.rgb for v in views], times)
    entries.append({**overhead.to_json()["cameras"][0], "role": "overhead", "file": "ground_truth/overhead/",
                    "focal_mm": 24.0, "sensor_width_mm": SENSOR_WIDTH_MM, "start_offset_s": 0.0,
                    "frame_count": config.frame_count, "start_timecode": config.shot_start_timecode,
                    "sample_rate_hz": None})

    ground_truth = {
        "reshoot_sample": _FORMAT_VERSION,
        "config": _config_json(config),
        "convention": "world: metres, +Z up, shot starts at world time 0 s; cameras: see reshoot.cameras",
        "fps": config.fps,
        "shot": {"frame_count": config.frame_count, "duration_s": shot_s,
                 "start_timecode": config.shot_start_timecode},
        "clap_time_s": clap_s,
        "set_bounds_m": [[-SET_HALF_SIZE_M, -SET_HALF_SIZE_M, 0.0], [SET_HALF_SIZE_M, SET_HALF_SIZE_M, WALL_HEIGHT_M]],
        "cameras": entries,
        "actor": _actor_track(motion, times),
        "landmarks_m": landmarks(),
    }
    atomic_write_json(out / GROUND_TRUTH, ground_truth)
    save_png(_sheet(sheet_frames, config), out / "contact_sheet.png")
    return ground_truth


def _set_cameras(config: SampleConfig, rng: np.random.Generator) -> tuple[Cameras, list[float]]:
    """Cameras around the set at different azimuths, heights and lenses, aimed near its centre."""
    n, w, h = config.n_cameras, config.width, config.height
    poses, focals, lenses, dists = [], [], [], []
    for k in range(n):
        azimuth = 2 * np.pi * k / n + rng.uniform(-0.14, 0.14)
        radius = rng.uniform(2.9, 3.2)
        eye = (radius * np.cos(azimuth), radius * np.sin(azimuth), rng.uniform(1.2, 2.3))
        target = (rng.normal(0, 0.15), rng.normal(0, 0.15), 0.9)
        lens = float(rng.uniform(20.0, 28.0))
        poses.append(look_at(eye, target))
        lenses.append(round(lens, 3))
        focals.append(focal_px_from_mm(lenses[-1], SENSOR_WIDTH_MM, w))
        k1 = rng.uniform(-0.10, 0.04) if config.distortion else 0.0
        k2 = rng.uniform(-0.02, 0.02) if config.distortion else 0.0
        dists.append([k1, k2, 0.0, 0.0, 0.0])
    ids = [f"cam{k}" for k in range(n)]
    cameras = Cameras.create(ids, focals, focals, [w / 2] * n, [h / 2] * n, np.array(poses),
                             np.tile([w, h], (n, 1)), np.array(dists))
    return cameras, lenses


def survey_cameras(config: SampleConfig) -> Cameras:
    """The survey: a walk around the set at two heights, each still aimed across the set's centre."""
    n, w, h = config.survey_stills, config.survey_width, config.survey_height
    poses = []
    for k in range(n):
        azimuth = 2 * np.pi * k / n
        eye = (2.4 * np.cos(azimuth), 2.4 * np.sin(azimuth), 1.5 if k % 2 == 0 else 2.1)
        poses.append(look_at(eye, (-0.8 * np.cos(azimuth), -0.8 * np.sin(azimuth), 0.8)))
    f = focal_px_from_mm(24.0, SENSOR_WIDTH_MM, w)
    return Cameras.create([f"survey{k:03d}" for k in range(n)], [f] * n, [f] * n, [w / 2] * n, [h / 2] * n,
                          np.array(poses).reshape(n, 4, 4), np.tile([w, h], (n, 1)))


def _render_survey(renderer: MeshRenderer, folder: Path, config: SampleConfig) -> list[dict[str, Any]]:
    if config.survey_stills == 0:
        return []
    survey = survey_cameras(config)
    renderer.show_actor(False)
    entries = []
    for k in track(range(len(survey)), "rendering set survey"):
        save_png(renderer.render(survey, k).rgb, folder / f"{k:03d}.png")
        entries.append({**survey.select([survey.camera_ids[k]]).to_json()["cameras"][0], "role": "survey",
                        "file": f"survey/{k:03d}.png", "focal_mm": 24.0, "sensor_width_mm": SENSOR_WIDTH_MM,
                        "start_offset_s": None, "frame_count": 1, "start_timecode": None, "sample_rate_hz": None})
    renderer.show_actor(True)
    return entries


def _overhead_camera(config: SampleConfig) -> Cameras:
    """A high angle above the action, looking down at the actor's path (the shot nobody filmed)."""
    w, h = config.width, config.height
    f = focal_px_from_mm(24.0, SENSOR_WIDTH_MM, w)
    pose = look_at((0.0, -1.2, 4.6), (0.0, 0.1, 0.6))
    return Cameras.create(["overhead"], [f], [f], [w / 2], [h / 2], pose[None], np.array([[w, h]]))


def _lead_frames(config: SampleConfig, rng: np.random.Generator) -> list[float]:
    """How many frames before the shot each camera rolls: all different, all known, at most max_lead_s."""
    max_lead = int(config.max_lead_s * config.fps)
    leads = rng.choice(np.arange(1, max_lead + 1), size=config.n_cameras, replace=False)
    if config.subframe_offsets:  # each lead moves back by a fraction of a frame: still distinct, within range
        return [float(lead) - float(rng.uniform(0.05, 0.95)) for lead in leads]
    return [float(lead) for lead in leads]


def _render_times(renderer: MeshRenderer, cameras: Cameras, idx: int, motion: ActorMotion, times: np.ndarray,
                  description: str) -> list:
    views = []
    for t in track(times, description):
        renderer.set_actor(motion.segment_poses(float(t)))
        views.append(renderer.render(cameras, idx))
    return views


def _actor_track(motion: ActorMotion, times: np.ndarray) -> dict[str, Any]:
    roots = [motion.root(float(t)) for t in times]
    return {"times_s": times.tolist(), "root_position_m": [p.tolist() for p, _ in roots],
            "heading_rad": [h for _, h in roots], "height_m": 1.75, "motion": asdict(motion)}


def _sheet(frames: dict[str, tuple[list[np.ndarray], np.ndarray]], config: SampleConfig):
    """Every camera at four instants of the shot: each cell is the frame nearest that world time."""
    instants = np.linspace(0, (config.frame_count - 1) / config.fps, 4)
    rows = {}
    for name, (images, times) in frames.items():
        rows[name] = [(f"t={t:.2f}s", images[int(np.argmin(np.abs(times - t)))]) for t in instants]
    return contact_sheet(rows, title=f"reshoot sample shoot: {config.n_cameras} set cameras + held-out overhead")


def _shift_timecode(timecode: str, frames: int, fps: float) -> str:
    """``HH:MM:SS:FF`` moved by ``frames`` (non-drop-frame, nominal rate ``round(fps)``)."""
    rate = int(round(fps))
    hh, mm, ss, ff = (int(x) for x in timecode.split(":"))
    total = ((hh * 60 + mm) * 60 + ss) * rate + ff + frames
    ff, total = total % rate, total // rate
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}:{ff:02d}"


def _config_json(config: SampleConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))

"""The footage a splat scene is trained on: every registered camera's frames, undistorted, with their poses.

Read from a workspace's ``ingest`` (frames, timeline) and ``register`` (cameras, per-frame poses) stages.
Frames are undistorted to the pinhole model the rasterizer draws (same focal length and principal point,
distortion removed) and optionally downscaled for training speed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from reshoot._deps import require
from reshoot.cameras import Cameras, distort
from reshoot.footage import read_image
from reshoot.progress import track

MIN_TRAINING_SIDE_PX = 32
"""The shortest side a training image may have after downscaling: smaller, a frame holds too little of the set and
the actor to train on (and below one pixel the resize itself fails)."""


@dataclass(frozen=True)
class ShotFootage:
    """Training footage of a shot: C cameras, T instants (frames of the ingested timeline)."""

    cameras: Cameras  # C pinhole cameras (distortion zero), one per physical camera; poses: each camera's first
    images: np.ndarray  # [C, T, H, W, 3] uint8, undistorted; frames missing from a camera are black and not valid
    valid: np.ndarray  # [C, T] bool: the camera has this frame, with a pose
    world_to_camera: np.ndarray  # [C, T, 4, 4] per-frame poses (the same for every frame of a locked-off camera)
    times: np.ndarray  # [T] normalised shot time: 0 at the first frame, 1 at the last
    frames: np.ndarray  # [T] the ingested frame index of each instant
    masks: np.ndarray | None = None  # [C, T, H, W] bool: pixels that count in training (None: all)

    @property
    def camera_ids(self) -> tuple[str, ...]:
        return self.cameras.camera_ids

    def camera_at(self, camera_idx: int, instant_idx: int) -> Cameras:
        """Camera ``camera_idx`` with its pose at instant ``instant_idx`` (one camera)."""
        one = self.cameras.select([self.camera_ids[camera_idx]])
        return replace(one, world_to_camera=self.world_to_camera[camera_idx, instant_idx][None])

    def moved(self, changes: dict[str, np.ndarray]) -> ShotFootage:
        """The footage with each named camera's pose changed: ``changes[camera_id]`` (4x4) multiplies its
        world-to-camera on the left at every frame (a refined pose); cameras not named stay as they are."""
        change = np.stack([np.asarray(changes.get(c, np.eye(4)), dtype=np.float64) for c in self.camera_ids])
        return replace(self, cameras=replace(self.cameras, world_to_camera=change @ self.cameras.world_to_camera),
                       world_to_camera=np.einsum("cij,ctjk->ctik", change, self.world_to_camera))

    def without(self, camera_id: str) -> ShotFootage:
        """The footage with one camera left out (for a held-out evaluation)."""
        keep = [i for i, c in enumerate(self.camera_ids) if c != camera_id]
        if len(keep) == len(self.camera_ids):
            raise ValueError(f"no camera {camera_id!r} to hold out; cameras: {', '.join(self.camera_ids)}")
        return ShotFootage(self.cameras.select([self.camera_ids[i] for i in keep]), self.images[keep],
                           self.valid[keep], self.world_to_camera[keep], self.times, self.frames,
                           None if self.masks is None else self.masks[keep])


@dataclass(frozen=True)
class SetStills:
    """Registered stills of the empty set (register's ``--survey``): static views that train the set only."""

    cameras: Cameras  # S pinhole cameras (distortion zero), sized as ``images``
    images: list[np.ndarray]  # S x [H_s, W_s, 3] uint8, undistorted
    keep: list[np.ndarray | None] | None = None  # S x [H_s, W_s] bool: pixels the lens filmed (None: all)

    def __len__(self) -> int:
        return len(self.images)


def load_set_stills(workspace_root: Path, max_width: int) -> SetStills | None:
    """The survey stills registration placed (None when there were none), undistorted and shrunk to at most
    ``max_width`` pixels wide (by a whole factor, so the lens stays exact)."""
    register = Path(workspace_root) / "register"
    registered = json.loads((register / "cameras.json").read_text())
    entries = registered.get("survey") or []
    if not entries:
        return None
    source = Cameras.from_json({"cameras": entries})
    cameras, images, keep = [], [], []
    for camera_id in track(source.camera_ids, "loading set stills"):
        path = register / "images" / f"{camera_id}.png"
        if not path.is_file():
            raise FileNotFoundError(f"survey still {camera_id!r} is registered but {path} is missing; re-run "
                                    "`reshoot register` with --survey")
        one = source.select([camera_id])
        full = replace(one, distortion=np.zeros_like(one.distortion))
        factor = max(1, int(np.ceil(one.image_size[0, 0] / max(1, max_width))))
        target = full.resized(one.image_size // factor)
        size = tuple(int(v) for v in target.image_size[0])
        maps = _undistort_maps(one, full)
        images.append(_remap(read_image(path), maps, size))
        outside = _outside_source(maps, one, target, (size[1], size[0]))
        keep.append(~outside if outside.any() else None)  # undistorted pixels the lens never saw stay out
        cameras.append(target)
    joined = Cameras(tuple(source.camera_ids), np.concatenate([c.K for c in cameras]), np.zeros((len(cameras), 5)),
                     np.concatenate([c.world_to_camera for c in cameras]),
                     np.concatenate([c.image_size for c in cameras]))
    return SetStills(joined, images, keep)


def check_downscale(cameras: Cameras, downscale: int, flag: str = "downscale") -> None:
    """Raise ``ValueError`` if shrinking ``cameras``' frames by ``downscale`` leaves a side shorter than
    ``MIN_TRAINING_SIDE_PX``, naming the smallest camera and the largest factor that works (``flag``: how the
    caller's user spells the setting, e.g. ``--downscale``)."""
    sides = np.asarray(cameras.image_size).min(axis=1)  # [C] each camera's short side, full size
    c = int(np.argmin(sides))
    if sides[c] // downscale >= MIN_TRAINING_SIDE_PX:
        return
    (width, height), camera_id = (int(v) for v in cameras.image_size[c]), cameras.camera_ids[c]
    most = int(sides[c]) // MIN_TRAINING_SIDE_PX
    if most < 1:
        raise ValueError(f"camera {camera_id!r} filmed {width}x{height} pixels, below the smallest usable "
                         f"{MIN_TRAINING_SIDE_PX} px on the short side even at full size: train on larger footage")
    raise ValueError(f"{flag} {downscale} makes {width // downscale}x{height // downscale}-pixel images of camera "
                     f"{camera_id!r} ({width}x{height}); the smallest usable is {MIN_TRAINING_SIDE_PX} px on the "
                     f"short side: use {flag} {most} or less")


def normalised_times(frame_count: int) -> np.ndarray:
    """Shot time of each ingested frame: 0 at the first, 1 at the last."""
    return np.linspace(0.0, 1.0, frame_count) if frame_count > 1 else np.zeros(1)


def load_shot_footage(workspace_root: Path, downscale: int = 1, frame_step: int = 1,
                      cameras: list[str] | None = None, masks: Path | None = None) -> ShotFootage:
    """The ingested frames and registered poses of a workspace (see the module docstring).

    Args:
        downscale: divide the image size by this (1: full size); ``ValueError`` if that leaves a side shorter than
            ``MIN_TRAINING_SIDE_PX`` (see :func:`check_downscale`).
        frame_step: use every ``frame_step``-th ingested frame.
        cameras: only these camera ids (default: every registered set camera).
        masks: optional folder of training masks, ``<camera>/<frame:06d>.png`` (ingested frame numbers, the
            frames' size): black pixels are left out of the loss (crew, rigging, a screen). A camera or frame
            without a mask file counts whole.
    """
    root = Path(workspace_root)
    ingest = root / "ingest"
    footage, registered, intrinsics, ids = _registered(root, cameras)
    if downscale < 1 or frame_step < 1:
        raise ValueError(f"downscale and frame_step must be at least 1; got {downscale}, {frame_step}")
    check_downscale(intrinsics.select(ids), downscale)
    count = footage["timeline"]["frame_count"]
    frames = np.arange(0, count, frame_step)
    layout = footage["frames"]["layout"]
    sizes = intrinsics.select(ids).image_size // downscale
    width, height = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    images = np.zeros((len(ids), len(frames), height, width, 3), np.uint8)
    valid = np.zeros((len(ids), len(frames)), bool)
    poses = np.tile(np.eye(4), (len(ids), len(frames), 1, 1))
    pinhole, outside = [], np.zeros((len(ids), height, width), bool)
    for c, camera_id in enumerate(ids):
        source = intrinsics.select([camera_id])
        full = replace(source, distortion=np.zeros_like(source.distortion))
        target = full.resized(source.image_size // downscale)
        pinhole.append(target)
        frame_poses = {p["frame"]: np.array(p["world_to_camera"]) for p in registered["frame_poses"].get(camera_id, [])}
        maps = _undistort_maps(source, full)
        outside[c] = _outside_source(maps, source, target, (height, width))
        for t, frame_idx in enumerate(track(frames, f"loading {camera_id}")):
            path = ingest / layout.replace("<camera>", camera_id).replace("<frame:06d>", f"{frame_idx:06d}")
            if frame_idx not in frame_poses or not path.is_file():
                continue
            image = _remap(read_image(path), maps, tuple(int(v) for v in target.image_size[0]))
            images[c, t, :image.shape[0], :image.shape[1]] = image
            valid[c, t] = True
            poses[c, t] = frame_poses[frame_idx]
        if not valid[c].any():
            raise ValueError(f"camera {camera_id!r} has no frame with both an ingested image and a registered pose "
                             f"in {root}; re-run ingest and register")
    first = [int(np.argmax(valid[c])) for c in range(len(ids))]
    joined = Cameras(tuple(ids), np.concatenate([p.K for p in pinhole]), np.zeros((len(ids), 5)),
                     np.stack([poses[c, first[c]] for c in range(len(ids))]),
                     np.concatenate([p.image_size for p in pinhole]))
    weights = None
    if masks is not None:
        weights = _read_masks(Path(masks), [intrinsics.select([c]) for c in ids], joined, frames, images.shape[:4])
    if outside.any():  # undistorted pixels the lens never saw (pincushion corners) are left out of training
        weights = np.ones(images.shape[:4], bool) if weights is None else weights
        weights &= ~outside[:, None]
    return ShotFootage(joined, images, valid, poses, normalised_times(count)[frames], frames, weights)


def registered_rig(workspace_root: Path, cameras: list[str] | None = None) -> tuple[Cameras, np.ndarray, np.ndarray]:
    """The registered set cameras as the scene renders them, without reading any footage.

    Returns:
        ``cameras``: pinhole versions of the registered cameras (same focal length and principal point, no
        distortion, full size), posed at their first registered frame; ``world_to_camera [C, T, 4, 4]``: each
        camera's pose at every frame of the ingested timeline; ``valid [C, T]``: the camera has a pose then.
    """
    footage, registered, intrinsics, ids = _registered(Path(workspace_root), cameras)
    count = footage["timeline"]["frame_count"]
    poses = np.tile(np.eye(4), (len(ids), count, 1, 1))
    valid = np.zeros((len(ids), count), bool)
    for c, camera_id in enumerate(ids):
        for entry in registered["frame_poses"].get(camera_id, []):
            if 0 <= entry["frame"] < count:
                poses[c, entry["frame"]], valid[c, entry["frame"]] = np.array(entry["world_to_camera"]), True
    pinhole = intrinsics.select(ids)
    first = [int(np.argmax(valid[c])) for c in range(len(ids))]
    pinhole = replace(pinhole, distortion=np.zeros_like(pinhole.distortion),
                      world_to_camera=np.stack([poses[c, first[c]] for c in range(len(ids))]))
    return pinhole, poses, valid


def _registered(root: Path, cameras: list[str] | None) -> tuple[dict, dict, Cameras, list[str]]:
    """footage.json, cameras.json, the registered cameras and the ids asked for (checked)."""
    ingest, register = root / "ingest", root / "register"
    for stage in (ingest, register):
        if not (stage / "manifest.json").is_file():
            raise FileNotFoundError(f"{stage} is missing: run `reshoot {stage.name} --workspace {root}` first")
    footage = json.loads((ingest / "footage.json").read_text())
    registered = json.loads((register / "cameras.json").read_text())
    intrinsics = Cameras.from_json(registered)
    ids = [c for c in intrinsics.camera_ids if cameras is None or c in cameras]
    if cameras is not None and sorted(set(cameras) - set(ids)):
        raise ValueError(f"cameras {sorted(set(cameras) - set(ids))} are not registered; registered: "
                         f"{', '.join(intrinsics.camera_ids)}")
    return footage, registered, intrinsics, ids


def _read_masks(folder: Path, sources: list[Cameras], joined: Cameras, frames: np.ndarray,
                shape: tuple[int, ...]) -> np.ndarray:
    """Training masks of each camera (``sources``: its lens as filmed), undistorted and resized like its frames.

    Returns [C, T, H, W] bool, True where a pixel counts.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"--masks {folder} is not a folder; it should hold <camera>/<frame:06d>.png")
    weights = np.ones(shape, bool)
    found = 0
    for c, source in enumerate(sources):
        camera_id = source.camera_ids[0]
        full = replace(source, distortion=np.zeros_like(source.distortion))
        maps = _undistort_maps(source, full)
        size = tuple(int(v) for v in joined.image_size[c])
        for t, frame_idx in enumerate(frames):
            path = folder / camera_id / f"{frame_idx:06d}.png"
            if path.is_file():
                mask = read_image(path)
                if mask.shape[:2] != tuple(source.image_size[0][::-1]):
                    raise ValueError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]}; the frames of {camera_id!r} "
                                     f"are {source.image_size[0][0]}x{source.image_size[0][1]}")
                gray = mask if mask.ndim == 2 else mask[..., :3].max(axis=2)
                gray = np.repeat(gray[..., None], 3, axis=2).astype(np.uint8)
                weights[c, t, :size[1], :size[0]] = _remap(gray, maps, size)[..., 0] >= 128
                found += 1
    if not found:
        raise FileNotFoundError(f"--masks {folder} holds no <camera>/<frame:06d>.png for cameras "
                                f"{', '.join(joined.camera_ids)}")
    return weights


def _undistort_maps(source: Cameras, target: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps taking ``source``'s (distorted) image to ``target``'s pinhole image."""
    width, height = (int(v) for v in target.image_size[0])
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)  # pixel centres, corner origin
    K, Ks = target.K[0], source.K[0]
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    xd, yd = distort(x, y, source.distortion[0])
    map_x = (Ks[0, 0] * xd + Ks[0, 2] - 0.5).astype(np.float32)  # OpenCV's pixel-centre origin
    map_y = (Ks[1, 1] * yd + Ks[1, 2] - 0.5).astype(np.float32)
    return map_x, map_y


def _outside_source(maps: tuple[np.ndarray, np.ndarray], source: Cameras, target: Cameras,
                    shape: tuple[int, int]) -> np.ndarray:
    """Pixels of the (resized) undistorted image whose source lies outside the filmed frame.  # [H, W] bool"""
    width, height = (int(v) for v in source.image_size[0])
    inside = ((maps[0] >= -0.5) & (maps[0] <= width - 0.5) & (maps[1] >= -0.5) & (maps[1] <= height - 0.5))
    size = tuple(int(v) for v in target.image_size[0])
    if inside.shape[::-1] != size:
        cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
        inside = cv2.resize(inside.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.999
    out = np.zeros(shape, bool)
    out[:size[1], :size[0]] = ~inside
    return out


def _remap(image: np.ndarray, maps: tuple[np.ndarray, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Undistort at full size, then shrink to ``size`` (width, height) with area averaging."""
    cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
    image = cv2.remap(image[..., :3], maps[0], maps[1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return image if image.shape[1::-1] == size else cv2.resize(image, size, interpolation=cv2.INTER_AREA)

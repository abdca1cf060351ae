"""Cameras and the one place where camera conventions are converted.

reshoot's own convention, used everywhere inside the package:

- **poses are world-to-camera** 4x4 matrices (``world_to_camera @ [X, 1]`` gives camera
  coordinates);
- **camera axes are OpenCV's**: +x right, +y down, +z forward (the direction the lens looks).
  COLMAP uses the same axes;
- **intrinsics are pixels with the pixel-corner origin**: the top-left *corner* of the image is
  (0, 0) and the centre of the top-left pixel is (0.5, 0.5). COLMAP, nerfstudio and OpenGL use this;
  OpenCV puts the centre of the top-left pixel at (0, 0), so ``cx_opencv = cx - 0.5``;
- **distortion is OpenCV's 5-term model** ``(k1, k2, p1, p2, k3)``;
- **the world is +Z up** wherever reshoot chooses the world (the sample shoot, paths). A world
  that came from COLMAP keeps COLMAP's axes until a recorded transform says otherwise;
- **lenses** are given in pixels inside reshoot; millimetres only with a sensor width (the
  *horizontal* film back, as Nuke's ``haperture``), and fields of view in degrees across the
  width (horizontal) or the height (vertical) with the principal point at the image centre.

Conversions to and from other conventions live here and nowhere else: OpenCV (``K, dist, R, t``),
COLMAP (``pycolmap.Reconstruction``), OpenGL camera-to-world and nerfstudio ``transforms.json``,
and Nuke's camera transform (Y-up world, OpenGL camera axes, ZXY Euler angles in degrees).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reshoot._deps import require

#: Right-multiplying a camera-to-world matrix by this flips OpenCV camera axes (y down, z forward)
#: to OpenGL camera axes (y up, z backward), and back: it is its own inverse.
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])

#: Left-multiplying a world point (or a camera-to-world matrix) by this takes reshoot's +Z-up world
#: to a +Y-up world such as Nuke's, Maya's or Houdini's: ``(x, y, z) -> (x, z, -y)``, a rotation of
#: -90 degrees about X (right-handed, no mirror). Its inverse is its transpose.
ZUP_TO_YUP = np.array([
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, -1.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
])

#: COLMAP camera models reshoot reads, and which of reshoot's distortion terms each holds.
_COLMAP_DISTORTION = {
    "SIMPLE_PINHOLE": (),
    "PINHOLE": (),
    "SIMPLE_RADIAL": ("k1",),
    "RADIAL": ("k1", "k2"),
    "OPENCV": ("k1", "k2", "p1", "p2"),
    "FULL_OPENCV": ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
}
_DISTORTION_TERMS = ("k1", "k2", "p1", "p2", "k3")


def _check_shape(name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> None:
    """Raise a ValueError that shows the expected and the actual shape."""
    ok = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
    if not ok:
        want = "[" + ", ".join("N" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"Cameras.{name}: expected shape {want}, got {list(array.shape)}")


@dataclass(frozen=True, eq=False)
class Cameras:
    """N pinhole cameras with OpenCV distortion, in reshoot's convention (see the module docstring).

    Attributes:
        camera_ids: one identifier per camera, e.g. ``("cam0", "cam1")``.
        K: intrinsic matrices, pixel-corner origin.  # [N, 3, 3]
        distortion: OpenCV terms ``(k1, k2, p1, p2, k3)``.  # [N, 5]
        world_to_camera: poses, OpenCV camera axes.  # [N, 4, 4]
        image_size: ``(width, height)`` in pixels.  # [N, 2]
    """

    camera_ids: tuple[str, ...]
    K: np.ndarray  # [N, 3, 3]
    distortion: np.ndarray  # [N, 5]
    world_to_camera: np.ndarray  # [N, 4, 4]
    image_size: np.ndarray  # [N, 2]

    def __post_init__(self) -> None:
        n = len(self.camera_ids)
        object.__setattr__(self, "camera_ids", tuple(str(c) for c in self.camera_ids))
        for name, dtype, shape in (
            ("K", np.float64, (n, 3, 3)),
            ("distortion", np.float64, (n, 5)),
            ("world_to_camera", np.float64, (n, 4, 4)),
            ("image_size", np.int64, (n, 2)),
        ):
            array = np.array(getattr(self, name), dtype=dtype)  # a private copy
            _check_shape(name, array, shape)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        if len(set(self.camera_ids)) != n:
            raise ValueError(f"Cameras.camera_ids must be unique, got {list(self.camera_ids)}")
        for name in ("K", "distortion", "world_to_camera"):
            bad = np.flatnonzero(~np.isfinite(getattr(self, name)).reshape(n, -1).all(axis=1)) if n else ()
            if len(bad):
                raise ValueError(f"Cameras.{name}: camera {self.camera_ids[bad[0]]!r} has non-finite values")
        skewed = np.flatnonzero(self.K[:, 0, 1] != 0)
        if skewed.size:
            raise ValueError(
                f"Cameras.K: camera {self.camera_ids[skewed[0]]!r} has skew K[0, 1] = {self.K[skewed[0], 0, 1]}; "
                "COLMAP and nerfstudio cannot hold skew, so reshoot does not either. Set it to 0.")
        bottom = self.world_to_camera[:, 3, :]
        if not np.allclose(bottom, [0, 0, 0, 1]):
            raise ValueError("Cameras.world_to_camera: the last row of every pose must be [0, 0, 0, 1]")

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        camera_ids: Sequence[str],
        fx: Sequence[float],
        fy: Sequence[float],
        cx: Sequence[float],
        cy: Sequence[float],
        world_to_camera: np.ndarray,  # [N, 4, 4]
        image_size: np.ndarray,  # [N, 2]
        distortion: np.ndarray | None = None,  # [N, 5]
    ) -> Cameras:
        """Build cameras from focal lengths and principal points in pixels (pixel-corner origin)."""
        n = len(camera_ids)
        K = np.zeros((n, 3, 3))
        K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = fx, fy, cx, cy, 1.0
        dist = np.zeros((n, 5)) if distortion is None else distortion
        return cls(tuple(camera_ids), K, dist, world_to_camera, image_size)

    def __len__(self) -> int:
        return len(self.camera_ids)

    def index(self, camera_id: str) -> int:
        """Position of ``camera_id``; a KeyError lists the ids there are."""
        try:
            return self.camera_ids.index(camera_id)
        except ValueError:
            raise KeyError(f"no camera {camera_id!r}; the cameras are {list(self.camera_ids)}") from None

    def select(self, camera_ids: Sequence[str]) -> Cameras:
        """The cameras named, in the order given."""
        idx = [self.index(c) for c in camera_ids]
        return Cameras(
            tuple(camera_ids), self.K[idx], self.distortion[idx], self.world_to_camera[idx], self.image_size[idx]
        )

    # ---- derived quantities -------------------------------------------------------------------

    @property
    def camera_to_world(self) -> np.ndarray:  # [N, 4, 4]
        """Inverse poses, OpenCV camera axes."""
        return np.linalg.inv(self.world_to_camera)

    @property
    def centers(self) -> np.ndarray:  # [N, 3]
        """Camera centres in world coordinates."""
        R, t = self.world_to_camera[:, :3, :3], self.world_to_camera[:, :3, 3]
        return -np.einsum("nji,nj->ni", R, t)

    def resized(self, image_size: np.ndarray) -> Cameras:
        """The same cameras for images resized to ``image_size`` (exact with the pixel-corner origin).  # [N, 2]"""
        size = np.asarray(image_size, dtype=np.float64).reshape(len(self), 2)
        factors = size / self.image_size
        K = self.K.copy()
        K[:, 0, :] *= factors[:, :1]
        K[:, 1, :] *= factors[:, 1:]
        return Cameras(self.camera_ids, K, self.distortion, self.world_to_camera, size.round().astype(np.int64))

    def transform_world(self, similarity: np.ndarray) -> Cameras:
        """The same cameras in a new world ``X' = s R X + t``, given as the 4x4 ``[[s R, t], [0, 1]]``.

        Projections are unchanged: a point and its image map to the same pixel in both worlds.
        """
        S = np.asarray(similarity, dtype=np.float64)
        scale = np.cbrt(np.linalg.det(S[:3, :3]))
        if not scale > 0:
            raise ValueError(f"transform_world: {S[:3, :3].tolist()} is not a rotation times a positive scale")
        R, t = S[:3, :3] / scale, S[:3, 3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6):
            raise ValueError("transform_world: the 3x3 part is not a rotation times a scale (shear or mirror)")
        poses = self.world_to_camera.copy()
        Rc = poses[:, :3, :3] @ R.T
        poses[:, :3, 3] = scale * poses[:, :3, 3] - Rc @ t
        poses[:, :3, :3] = Rc
        return Cameras(self.camera_ids, self.K, self.distortion, poses, self.image_size)

    def project(self, camera_idx: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points into camera ``camera_idx``, distortion included.

        Args:
            points: world coordinates.  # [P, 3]
        Returns:
            pixels (pixel-corner origin)  # [P, 2]
            depth along the optical axis  # [P]
        """
        points = np.asarray(points, dtype=np.float64)
        cam = points @ self.world_to_camera[camera_idx, :3, :3].T + self.world_to_camera[camera_idx, :3, 3]
        z = cam[:, 2]
        x, y = cam[:, 0] / z, cam[:, 1] / z
        x, y = distort(x, y, self.distortion[camera_idx])
        K = self.K[camera_idx]
        u = K[0, 0] * x + K[0, 2]
        v = K[1, 1] * y + K[1, 2]
        return np.stack([u, v], axis=-1), z

    # ---- OpenCV -------------------------------------------------------------------------------

    def to_opencv(self) -> list[dict[str, np.ndarray]]:
        """Per camera ``{"K", "dist", "R", "t", "size"}`` as ``cv2`` functions take them.

        ``K`` here has OpenCV's pixel-centre origin (``cx - 0.5``); ``R, t`` map world to camera.
        """
        out = []
        for i in range(len(self)):
            K = self.K[i].copy()
            K[0, 2] -= 0.5
            K[1, 2] -= 0.5
            out.append({
                "K": K,
                "dist": self.distortion[i].copy(),
                "R": self.world_to_camera[i, :3, :3].copy(),
                "t": self.world_to_camera[i, :3, 3].copy(),
                "size": self.image_size[i].copy(),
            })
        return out

    @classmethod
    def from_opencv(cls, camera_ids: Sequence[str], cameras: Sequence[dict[str, Any]]) -> Cameras:
        """Inverse of :meth:`to_opencv`; ``dist`` may have 4, 5 or more terms (extra terms must be 0)."""
        Ks, dists, poses, sizes = [], [], [], []
        for camera_id, cam in zip(camera_ids, cameras):
            K = np.array(cam["K"], dtype=np.float64)
            K[0, 2] += 0.5
            K[1, 2] += 0.5
            dists.append(_five_term(np.ravel(cam.get("dist", np.zeros(5))), camera_id))
            pose = np.eye(4)
            pose[:3, :3] = cam["R"]
            pose[:3, 3] = np.ravel(cam["t"])
            Ks.append(K)
            poses.append(pose)
            sizes.append(cam["size"])
        return cls(tuple(camera_ids), np.array(Ks), np.array(dists), np.array(poses), np.array(sizes))

    # ---- OpenGL / nerfstudio ------------------------------------------------------------------

    def camera_to_world_opengl(self) -> np.ndarray:  # [N, 4, 4]
        """Camera-to-world with OpenGL camera axes (+y up, +z backward), as nerfstudio and pyrender use."""
        return self.camera_to_world @ OPENCV_TO_OPENGL

    def to_nerfstudio(
        self,
        file_paths: Sequence[str] | None = None,
        applied_transform: np.ndarray | None = None,  # [4, 4] or [3, 4]
    ) -> dict[str, Any]:
        """A nerfstudio ``transforms.json`` dictionary, with per-frame intrinsics.

        Args:
            file_paths: image path per camera, relative to the JSON file; default ``images/<id>.png``.
            applied_transform: world transform applied to the poses before writing (e.g. COLMAP's
                y-down world to +Z up); recorded as nerfstudio's ``applied_transform`` so that
                :meth:`from_nerfstudio` and nerfstudio itself can map results back.
        """
        paths = list(file_paths) if file_paths is not None else [f"images/{c}.png" for c in self.camera_ids]
        if len(paths) != len(self):
            raise ValueError(f"to_nerfstudio: {len(paths)} file_paths for {len(self)} cameras")
        world = _as_4x4(applied_transform)
        c2w = world @ self.camera_to_world_opengl()
        frames = []
        for i, camera_id in enumerate(self.camera_ids):
            k1, k2, p1, p2, k3 = (float(v) for v in self.distortion[i])
            frames.append({
                "file_path": paths[i],
                "transform_matrix": c2w[i].tolist(),
                "camera_model": "OPENCV",
                "fl_x": float(self.K[i, 0, 0]),
                "fl_y": float(self.K[i, 1, 1]),
                "cx": float(self.K[i, 0, 2]),
                "cy": float(self.K[i, 1, 2]),
                "w": int(self.image_size[i, 0]),
                "h": int(self.image_size[i, 1]),
                "k1": k1, "k2": k2, "k3": k3, "p1": p1, "p2": p2,
                "reshoot_camera_id": camera_id,
            })
        out: dict[str, Any] = {"camera_model": "OPENCV", "frames": frames}
        if applied_transform is not None:
            out["applied_transform"] = world[:3].tolist()
        return out

    @classmethod
    def from_nerfstudio(cls, transforms: dict[str, Any]) -> Cameras:
        """Read a ``transforms.json`` dictionary (global or per-frame intrinsics).

        Camera ids come from ``reshoot_camera_id`` when present, else from the file name's stem.
        An ``applied_transform`` is undone, so poses return to the world they were made in.
        """
        world_inv = np.linalg.inv(_as_4x4(transforms.get("applied_transform")))
        model = transforms.get("camera_model", "OPENCV")
        if model not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE"):
            raise ValueError(f"transforms.json camera_model {model!r} is not supported; use OPENCV or PINHOLE")
        ids, fx, fy, cx, cy, poses, sizes, dists = [], [], [], [], [], [], [], []
        for idx, frame in enumerate(transforms["frames"]):
            def get(key: str, default: float | None = None) -> float:
                value = frame.get(key, transforms.get(key, default))
                if value is None:
                    raise ValueError(f"transforms.json frame {idx} ({frame.get('file_path')}): no {key!r}")
                return value
            ids.append(frame.get("reshoot_camera_id") or Path(frame["file_path"]).stem)
            fx.append(get("fl_x")), fy.append(get("fl_y")), cx.append(get("cx")), cy.append(get("cy"))
            sizes.append((int(get("w")), int(get("h"))))
            dists.append([get(k, 0.0) for k in _DISTORTION_TERMS])
            if get("k4", 0.0) != 0:
                raise ValueError(f"transforms.json frame {idx} ({frame.get('file_path')}): k4 = {get('k4')} is not "
                                 "held by reshoot's 5-term OpenCV model; undistort the images first")
            c2w_gl = world_inv @ np.array(frame["transform_matrix"], dtype=np.float64)
            poses.append(np.linalg.inv(c2w_gl @ OPENCV_TO_OPENGL))
        return cls.create(ids, fx, fy, cx, cy, np.array(poses), np.array(sizes), np.array(dists))

    # ---- COLMAP -------------------------------------------------------------------------------

    def to_colmap(self) -> Any:
        """A ``pycolmap.Reconstruction`` with one COLMAP camera and one image per camera (no points).

        The model is PINHOLE without distortion, OPENCV when ``k3 == 0``, else FULL_OPENCV.
        Image names are ``<camera_id>.png``; COLMAP camera/image ids are ``index + 1``.
        """
        pycolmap = require("pycolmap", "pip install pycolmap")
        rec = pycolmap.Reconstruction()
        for i, camera_id in enumerate(self.camera_ids):
            rec.add_camera_with_trivial_rig(self.colmap_camera(i, i + 1))
            image = pycolmap.Image(name=f"{camera_id}.png", camera_id=i + 1, image_id=i + 1)
            pose = self.world_to_camera[i]
            rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(pose[:3, :3]), pose[:3, 3]))
        return rec

    def colmap_camera(self, camera_idx: int, colmap_camera_id: int, model: str | None = None) -> Any:
        """Camera ``camera_idx`` as a ``pycolmap.Camera``: PINHOLE, OPENCV when ``k3 == 0``, else FULL_OPENCV.

        ``model`` forces OPENCV or FULL_OPENCV (e.g. to match a COLMAP database's camera); OPENCV needs ``k3 == 0``.
        """
        pycolmap = require("pycolmap", "pip install pycolmap")
        i = camera_idx
        fx, fy, cx, cy = self.K[i, 0, 0], self.K[i, 1, 1], self.K[i, 0, 2], self.K[i, 1, 2]
        k1, k2, p1, p2, k3 = self.distortion[i]
        if model not in (None, "OPENCV", "FULL_OPENCV") or (model == "OPENCV" and k3 != 0):
            raise ValueError(f"camera {self.camera_ids[i]!r} cannot be written as COLMAP model {model} (k3 = {k3})")
        if model == "FULL_OPENCV":
            model, params = "FULL_OPENCV", [fx, fy, cx, cy, k1, k2, p1, p2, k3, 0, 0, 0]
        elif model == "OPENCV":
            model, params = "OPENCV", [fx, fy, cx, cy, k1, k2, p1, p2]
        elif not self.distortion[i].any():
            model, params = "PINHOLE", [fx, fy, cx, cy]
        elif k3 == 0:
            model, params = "OPENCV", [fx, fy, cx, cy, k1, k2, p1, p2]
        else:
            model, params = "FULL_OPENCV", [fx, fy, cx, cy, k1, k2, p1, p2, k3, 0, 0, 0]
        width, height = (int(v) for v in self.image_size[i])
        return pycolmap.Camera(model=model, width=width, height=height, params=params, camera_id=colmap_camera_id)

    @classmethod
    def from_colmap(cls, reconstruction: Any) -> Cameras:
        """One camera per registered image of a ``pycolmap.Reconstruction``, ordered by image id.

        Camera ids are the image names without their extension.
        """
        ids, Ks, dists, poses, sizes = [], [], [], [], []
        for image_id in sorted(reconstruction.images):
            image = reconstruction.images[image_id]
            if not image.has_pose:
                continue
            camera = reconstruction.cameras[image.camera_id]
            K, dist = _colmap_intrinsics(camera, image.name)
            ids.append(Path(image.name).with_suffix("").as_posix())
            Ks.append(K)
            dists.append(dist)
            poses.append(np.vstack([image.cam_from_world().matrix(), [0, 0, 0, 1]]))
            sizes.append((camera.width, camera.height))
        return cls(tuple(ids), np.array(Ks).reshape(-1, 3, 3), np.array(dists).reshape(-1, 5),
                   np.array(poses).reshape(-1, 4, 4), np.array(sizes).reshape(-1, 2))

    # ---- reshoot JSON -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """reshoot's own ``cameras.json`` form: one entry per camera, in this module's convention."""
        return {
            "convention": "world_to_camera, OpenCV axes (x right, y down, z forward), pixel-corner origin",
            "cameras": [
                {
                    "camera_id": camera_id,
                    "width": int(self.image_size[i, 0]),
                    "height": int(self.image_size[i, 1]),
                    "K": self.K[i].tolist(),
                    "distortion_k1_k2_p1_p2_k3": self.distortion[i].tolist(),
                    "world_to_camera": self.world_to_camera[i].tolist(),
                }
                for i, camera_id in enumerate(self.camera_ids)
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cameras:
        """Inverse of :meth:`to_json`."""
        cams = data["cameras"]
        return cls(
            tuple(c["camera_id"] for c in cams),
            np.array([c["K"] for c in cams]).reshape(-1, 3, 3),
            np.array([c["distortion_k1_k2_p1_p2_k3"] for c in cams]).reshape(-1, 5),
            np.array([c["world_to_camera"] for c in cams]).reshape(-1, 4, 4),
            np.array([(c["width"], c["height"]) for c in cams]).reshape(-1, 2),
        )


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """World-to-camera pose (OpenCV axes) of a camera at ``eye`` looking at ``target``.  # [4, 4]

    ``up`` is the world direction that should appear up in the image (default +Z). It must not be
    parallel to the viewing direction: for a camera looking straight down give e.g. ``up=(0, 1, 0)``.
    """
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    if not np.linalg.norm(forward) > 1e-12:
        raise ValueError(f"look_at: eye {eye.tolist()} and target {target.tolist()} are the same point")
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if not np.linalg.norm(right) > 1e-9:
        raise ValueError(f"look_at: up {up.tolist()} is parallel to the view direction {forward.tolist()}")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    pose = np.eye(4)
    pose[:3, :3] = R
    pose[:3, 3] = -R @ eye
    return pose


def focal_px_from_mm(focal_mm: float, sensor_width_mm: float, width_px: int) -> float:
    """Focal length in pixels from a lens in mm on a sensor of the given width."""
    return focal_mm / sensor_width_mm * width_px


def focal_mm_from_px(focal_px: float, sensor_width_mm: float, width_px: int) -> float:
    """Lens in mm on a sensor of the given width from a focal length in pixels (inverse of :func:`focal_px_from_mm`)."""
    return focal_px / width_px * sensor_width_mm


def fov_deg_from_focal_px(focal_px: float | np.ndarray, size_px: float) -> float | np.ndarray:
    """Field of view in degrees across ``size_px`` pixels, the principal point at the centre.

    Give the image width for the horizontal field of view, the height for the vertical one
    (nerfstudio's camera paths and Nuke's ``.chan`` files hold the vertical one).
    """
    return np.degrees(2.0 * np.arctan(size_px / 2.0 / np.asarray(focal_px, dtype=np.float64)))


def focal_px_from_fov_deg(fov_deg: float | np.ndarray, size_px: float) -> float | np.ndarray:
    """Focal length in pixels from the field of view across ``size_px`` pixels (inverse of :func:`fov_deg_from_focal_px`).

    This is nerfstudio's ``three_js_perspective_camera_focal_length(fov, image_height)``.
    """
    return size_px / 2.0 / np.tan(np.radians(np.asarray(fov_deg, dtype=np.float64)) / 2.0)


# ---- Nuke ---------------------------------------------------------------------------------------
#
# A Nuke Camera (classic 3D, defaults ``xform_order SRT``, ``rot_order ZXY``, no scale, no pivot) has
# the local matrix ``T(translate) @ Ry(ry) @ Rx(rx) @ Rz(rz)``: the Z rotation is applied first,
# then X, then Y, all about the parent's (world) axes, angles in degrees. The camera looks down
# its -Z axis with +Y up and +X right (OpenGL camera axes), in Nuke's +Y-up world. So
# ``camera_to_world_nuke = ZUP_TO_YUP @ camera_to_world @ OPENCV_TO_OPENGL``.


def _axis_rotation(axis: int, angle_rad: np.ndarray) -> np.ndarray:  # [N, 3, 3]
    """Right-handed rotations about world axis 0 (X), 1 (Y) or 2 (Z)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.zeros((len(angle_rad), 3, 3))
    R[:, axis, axis] = 1.0
    R[:, i, i], R[:, i, j], R[:, j, i], R[:, j, j] = c, -s, s, c
    return R


def rotation_from_euler_zxy_deg(rotate_deg: np.ndarray) -> np.ndarray:  # [N, 3, 3]
    """``Ry(ry) @ Rx(rx) @ Rz(rz)`` from ``rotate_deg = (rx, ry, rz)`` per row, Nuke's ``rot_order ZXY``.  # [N, 3]"""
    r = np.radians(np.asarray(rotate_deg, dtype=np.float64).reshape(-1, 3))
    return _axis_rotation(1, r[:, 1]) @ _axis_rotation(0, r[:, 0]) @ _axis_rotation(2, r[:, 2])


def euler_zxy_deg_from_rotation(R: np.ndarray) -> np.ndarray:  # [N, 3]
    """``(rx, ry, rz)`` in degrees with ``R = Ry(ry) @ Rx(rx) @ Rz(rz)``; inverse of :func:`rotation_from_euler_zxy_deg`.

    ``rx`` is in [-90, 90]. At gimbal lock (``rx = +-90``: in Nuke's world a camera looking straight
    down or up) only ``ry - rz`` or ``ry + rz`` is defined; ``rz`` is then 0. Elsewhere ``rz`` is
    found first and ``ry`` from what is left, so the angles rebuild ``R`` to rounding error even
    close to the lock.  # R: [N, 3, 3]
    """
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    cos_x = np.hypot(R[:, 1, 0], R[:, 1, 1])
    rx = np.arctan2(-R[:, 1, 2], cos_x)
    rz = np.where(cos_x > 1e-12, np.arctan2(R[:, 1, 0], R[:, 1, 1]), 0.0)
    rest = R @ np.swapaxes(_axis_rotation(0, rx) @ _axis_rotation(2, rz), 1, 2)  # = Ry(ry)
    ry = np.arctan2(rest[:, 0, 2], rest[:, 0, 0])
    return np.degrees(np.stack([rx, ry, rz], axis=1))


def nuke_camera_transform(world_to_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nuke Camera knobs ``translate`` and ``rotate`` (degrees, ``rot_order ZXY``) for reshoot poses.

    reshoot's +Z-up world becomes Nuke's +Y-up world through :data:`ZUP_TO_YUP` (distances keep
    their unit). Along the N poses each angle is unwrapped by whole turns so that consecutive
    values differ by less than 180 degrees (Nuke interpolates the curves between frames).

    Args:
        world_to_camera: reshoot poses, OpenCV camera axes.  # [N, 4, 4]
    Returns:
        translate  # [N, 3]
        rotate_deg: ``(rx, ry, rz)``  # [N, 3]
    """
    poses = np.asarray(world_to_camera, dtype=np.float64).reshape(-1, 4, 4)
    c2w = ZUP_TO_YUP @ np.linalg.inv(poses) @ OPENCV_TO_OPENGL
    rotate = euler_zxy_deg_from_rotation(c2w[:, :3, :3])
    if len(rotate) > 1:
        rotate = np.degrees(np.unwrap(np.radians(rotate), axis=0))
    return c2w[:, :3, 3].copy(), rotate


def world_to_camera_from_nuke(translate: np.ndarray, rotate_deg: np.ndarray) -> np.ndarray:  # [N, 4, 4]
    """reshoot poses from Nuke Camera ``translate`` and ``rotate`` (degrees, ``rot_order ZXY``); inverse of
    :func:`nuke_camera_transform`.  # translate, rotate_deg: [N, 3]
    """
    translate = np.asarray(translate, dtype=np.float64).reshape(-1, 3)
    c2w = np.tile(np.eye(4), (len(translate), 1, 1))
    c2w[:, :3, :3] = rotation_from_euler_zxy_deg(rotate_deg)
    c2w[:, :3, 3] = translate
    return np.linalg.inv(ZUP_TO_YUP.T @ c2w @ OPENCV_TO_OPENGL)


def distort(x: np.ndarray, y: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply OpenCV's ``(k1, k2, p1, p2, k3)`` distortion to normalised image coordinates."""
    k1, k2, p1, p2, k3 = dist
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def undistort(xd: np.ndarray, yd: np.ndarray, dist: np.ndarray, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Invert :func:`distort` by fixed-point iteration (as OpenCV's ``undistortPoints``)."""
    k1, k2, p1, p2, k3 = dist
    x, y = xd.copy(), yd.copy()
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x, y = (xd - dx) / radial, (yd - dy) / radial
    return x, y


def _as_4x4(transform: Any) -> np.ndarray:
    if transform is None:
        return np.eye(4)
    m = np.asarray(transform, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, [0, 0, 0, 1]])
    if m.shape != (4, 4):
        raise ValueError(f"a world transform must be [3, 4] or [4, 4], got {list(m.shape)}")
    return m


def _five_term(dist: np.ndarray, camera_id: str) -> np.ndarray:
    """OpenCV distortion of any length as reshoot's 5 terms; longer vectors must end in zeros."""
    out = np.zeros(5)
    out[: min(5, dist.size)] = dist[:5]
    if dist.size > 5 and np.any(dist[5:] != 0):
        raise ValueError(
            f"camera {camera_id!r}: distortion has {dist.size} terms with non-zero terms after k3; "
            "reshoot holds only (k1, k2, p1, p2, k3). Undistort the footage first."
        )
    return out


def _colmap_intrinsics(camera: Any, image_name: str) -> tuple[np.ndarray, np.ndarray]:
    """K (pixel-corner origin, as COLMAP) and 5-term distortion of a pycolmap camera."""
    model = camera.model.name
    if model not in _COLMAP_DISTORTION:
        raise ValueError(
            f"COLMAP camera {camera.camera_id} (image {image_name!r}) uses model {model}; reshoot reads "
            f"{', '.join(_COLMAP_DISTORTION)}. Re-run COLMAP with one of those models."
        )
    params = np.asarray(camera.params, dtype=np.float64)
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        f, cx, cy, extra = params[0], params[1], params[2], params[3:]
        fx = fy = f
    else:
        fx, fy, cx, cy, extra = params[0], params[1], params[2], params[3], params[4:]
    terms = dict(zip(_COLMAP_DISTORTION[model], extra))
    if any(terms.get(k, 0.0) != 0 for k in ("k4", "k5", "k6")):
        raise ValueError(
            f"COLMAP camera {camera.camera_id} (image {image_name!r}): FULL_OPENCV with non-zero k4..k6 "
            "is not held by reshoot's 5-term model; re-run COLMAP with OPENCV."
        )
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=np.float64)
    return K, np.array([terms.get(k, 0.0) for k in _DISTORTION_TERMS])

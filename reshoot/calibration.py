"""Known calibration of an already-calibrated rig, read so that registration can use it instead of solving.

Readers, one per source, each returning a :class:`Calibration` (one camera per *physical* camera):

- :func:`read_caliscope`: caliscope's ``camera_array.toml`` (also its older ``config.toml`` and the
  aniposelib-style export with top-level ``[cam_N]`` tables);
- :func:`read_colmap_model`: a COLMAP model folder, one image per camera or a rig layout
  (``cam0/000012.png``: many frames of a locked-off camera);
- :func:`read_transforms`: a nerfstudio ``transforms.json``;
- reshoot's own ``cameras.json`` (:meth:`Cameras.to_json`), through :func:`read_calibration`.

:func:`read_calibration` picks the reader from what is at a path; :func:`match_cameras` then gives the
calibrated cameras for the footage's camera ids. Every convention change goes through
:class:`reshoot.cameras.Cameras` (``from_opencv``, ``from_colmap``, ``from_nerfstudio``, ``from_json``);
this module only selects, groups and checks.

Quick start::

    from reshoot.calibration import read_calibration, match_cameras
    calibration = read_calibration(Path("session/camera_array.toml"))
    print(calibration.kind, calibration.notes)
    cameras = match_cameras(calibration, ["cam0", "cam1", "cam2", "cam3"])  # the footage's ids
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from reshoot._deps import require
from reshoot.cameras import Cameras

#: What :func:`read_calibration` accepts, as its errors list it.
ACCEPTED_KINDS = (
    "caliscope: a camera_array.toml (or a folder holding one)",
    "colmap: a model folder with cameras.bin/.txt and images.bin/.txt, or a folder holding sparse/0",
    "nerfstudio: a transforms.json",
    "reshoot: a cameras.json as Cameras.to_json writes it",
)

#: Several images of one camera must agree this well to count as one locked-off camera.
MAX_ROTATION_SPREAD_DEG = 0.01
#: ... and their centres within this fraction of the scene extent (the span of all image centres).
MAX_CENTRE_SPREAD = 1e-6

_IMAGES_FOLDER = re.compile(r"images(_\d+)?")


@dataclass(frozen=True)
class Calibration:
    """A rig's known calibration, one camera per physical camera, in reshoot's convention."""

    cameras: Cameras
    """One camera per physical camera; ids as the source names them (caliscope: ``cam_<cam_id>``)."""
    source: str
    """The file or folder read, as an absolute path."""
    kind: str
    """``"caliscope"``, ``"colmap"``, ``"nerfstudio"`` or ``"reshoot"``."""
    notes: tuple[str, ...] = ()
    """Things the user should know: units, cameras left out, image rotations, images grouped."""


# ---- dispatch -----------------------------------------------------------------------------------


def read_calibration(path: Path) -> Calibration:
    """Read whatever known calibration is at ``path`` (see :data:`ACCEPTED_KINDS`).

    A ``.toml`` file is caliscope's; a ``.json`` file is nerfstudio's when it has ``frames``, reshoot's
    when its ``cameras`` have ``world_to_camera``. A folder is a COLMAP model, or holds one in
    ``sparse/0`` (or ``sparse``), or holds exactly one of ``camera_array.toml``, ``transforms.json``,
    ``cameras.json``. Anything else is a ValueError naming the path and listing the accepted kinds.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no calibration at {path}: nothing is there. {_accepted()}")
    if path.is_dir():
        return _read_folder(path)
    if path.suffix.lower() == ".toml":
        return read_caliscope(path)
    if path.suffix.lower() == ".json":
        data = _load_json(path)
        if isinstance(data, dict) and isinstance(data.get("frames"), list):
            return read_transforms(path)
        if _is_cameras_json(data):
            return _read_cameras_json(path, data)
        raise ValueError(f"{path} is JSON but neither a nerfstudio transforms.json (no 'frames' list) nor a "
                         f"reshoot cameras.json (no 'cameras' with 'world_to_camera'). {_accepted()}")
    raise ValueError(f"{path} is not a calibration reshoot reads (suffix {path.suffix!r}). {_accepted()}")


def _read_folder(folder: Path) -> Calibration:
    if _is_colmap_model(folder) or _colmap_model_in(folder) is not None:
        found = ["COLMAP model"]
    else:
        found = []
    files = {"camera_array.toml": read_caliscope, "transforms.json": read_transforms,
             "cameras.json": lambda p: _read_cameras_json(p, _load_json(p))}
    found += [name for name in files if (folder / name).is_file()]
    if len(found) > 1:
        raise ValueError(f"{folder} holds several calibrations ({', '.join(found)}); "
                         "pass the one to use as the path itself.")
    if found == ["COLMAP model"]:
        return read_colmap_model(folder)
    if found:
        return files[found[0]](folder / found[0])
    raise ValueError(f"{folder} holds no calibration reshoot reads. {_accepted()}")


def _accepted() -> str:
    return "Accepted: " + "; ".join(ACCEPTED_KINDS) + "."


# ---- caliscope ----------------------------------------------------------------------------------


def read_caliscope(path: Path) -> Calibration:
    """Read caliscope's ``camera_array.toml`` (a folder holding one is fine too).

    Each ``[cameras.N]`` table has ``cam_id``, ``size = [w, h]``, ``matrix`` (K, OpenCV's pixel-centre
    origin), ``distortions`` (OpenCV terms), ``rotation`` (3x3, or the 3-term Rodrigues vector newer
    caliscope writes) and ``translation`` (metres), world-to-camera. The camera id is
    ``cam_<cam_id>``, as caliscope names its videos (``cam_0.mp4``). Older files (``config.toml``,
    ``port`` instead of ``cam_id``) and the aniposelib-style export (top-level ``[cam_N]`` tables)
    read the same way.

    Cameras with ``ignore = true`` are left out, with a note. A camera with intrinsics but no
    ``rotation``/``translation`` (caliscope has not posed it) and a fisheye camera are errors: reshoot
    needs a pose and holds only OpenCV's 5-term model.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "camera_array.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read caliscope calibration {path}: {exc}") from exc
    tables = _caliscope_tables(data)
    if not tables:
        raise ValueError(f"{path} has no camera tables: expected [cameras.N] tables (caliscope's "
                         "camera_array.toml) or top-level [cam_N] tables with a 'matrix'. " + _accepted())
    ids: list[str] = []
    opencv: list[dict[str, Any]] = []
    ignored: list[str] = []
    rotated: list[str] = []
    for key, table in tables:
        camera_id = _caliscope_id(key, table)
        if table.get("ignore", False):
            ignored.append(camera_id)
            continue
        if camera_id in ids:
            raise ValueError(f"{path}: two tables name camera {camera_id!r}; give each its own cam_id.")
        opencv.append(_caliscope_camera(camera_id, table, path))
        ids.append(camera_id)
        turns = int(table.get("rotation_count", 0))
        if turns % 4:
            w, h = table["size"]
            rotated.append(f"{camera_id} ({turns} x 90 deg, calibrated at {w}x{h})")
    if not ids:
        raise ValueError(f"{path}: every camera is marked ignore = true ({', '.join(ignored)}); nothing to read.")
    notes = ["translations, camera centres and the world are in metres, as caliscope writes them"]
    if ignored:
        notes.append(f"left out cameras marked ignore = true: {', '.join(ignored)}")
    if rotated:
        notes.append(
            "rotation_count != 0 for " + ", ".join(rotated) + ": the capture tool turns these cameras' "
            "images by that many quarter turns. The calibration refers to images of the size given; use "
            "the footage in the orientation that has that size (in caliscope's sample sessions that is "
            "the frames as recorded, not as displayed), and check it before trusting the poses.")
    return Calibration(Cameras.from_opencv(ids, opencv), str(path.resolve()), "caliscope", tuple(notes))


def _caliscope_tables(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The camera tables: ``[cameras.N]``, else top-level tables that hold a ``matrix``."""
    if isinstance(data.get("cameras"), dict):
        return [(str(k), v) for k, v in data["cameras"].items() if isinstance(v, dict)]
    return [(k, v) for k, v in data.items() if isinstance(v, dict) and "matrix" in v]


def _caliscope_id(key: str, table: dict[str, Any]) -> str:
    for field in ("cam_id", "port"):  # "port" in caliscope before 2024
        if field in table:
            return f"cam_{table[field]}"
    if "name" in table:  # aniposelib-style export
        return str(table["name"])
    return f"cam_{key}" if key.isdigit() else key


def _caliscope_camera(camera_id: str, table: dict[str, Any], path: Path) -> dict[str, Any]:
    """One caliscope table as the dictionary :meth:`Cameras.from_opencv` takes."""
    missing = [k for k in ("size", "matrix") if k not in table]
    if missing:
        raise ValueError(f"{path}: camera {camera_id!r} has no {' or '.join(missing)}; it is not calibrated. "
                         "Calibrate its intrinsics in caliscope, or mark it ignore = true.")
    if "rotation" not in table or "translation" not in table:
        raise ValueError(f"{path}: camera {camera_id!r} has intrinsics but no rotation/translation: caliscope "
                         "has not posed it. Run caliscope's extrinsic calibration, or mark it ignore = true.")
    if table.get("fisheye", False):
        raise ValueError(f"{path}: camera {camera_id!r} is calibrated with the fisheye model; reshoot holds "
                         "only OpenCV's 5-term (k1, k2, p1, p2, k3) model. Recalibrate it without fisheye.")
    K = np.asarray(table["matrix"], dtype=np.float64)
    t = np.asarray(table["translation"], dtype=np.float64).ravel()
    size = np.asarray(table["size"]).ravel()
    if K.shape != (3, 3) or t.shape != (3,) or size.shape != (2,):
        raise ValueError(f"{path}: camera {camera_id!r}: expected matrix [3, 3], translation [3], size [2]; "
                         f"got {list(K.shape)}, {list(t.shape)}, {list(size.shape)}")
    return {
        "K": K,
        "dist": np.asarray(table.get("distortions", np.zeros(5)), dtype=np.float64),
        "R": _rotation_matrix(table["rotation"], camera_id, path),
        "t": t,
        "size": size.astype(np.int64),
    }


def _rotation_matrix(value: Any, camera_id: str, path: Path) -> np.ndarray:  # [3, 3]
    """A 3x3 rotation, from a 3x3 matrix or a Rodrigues vector (axis times angle in radians)."""
    R = np.asarray(value, dtype=np.float64)
    if R.shape in ((3,), (3, 1)):
        r = R.ravel()
        angle = np.linalg.norm(r)
        S = _skew(r / angle) if angle > 0 else np.zeros((3, 3))
        R = np.eye(3) + np.sin(angle) * S + (1 - np.cos(angle)) * S @ S
    if R.shape != (3, 3):
        raise ValueError(f"{path}: camera {camera_id!r}: rotation must be [3, 3] or a Rodrigues vector [3], "
                         f"got shape {list(R.shape)}")
    if not (np.allclose(R @ R.T, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0):
        raise ValueError(f"{path}: camera {camera_id!r}: rotation {R.tolist()} is not a rotation "
                         f"(R R^T - I up to {np.abs(R @ R.T - np.eye(3)).max():.2g}, det {np.linalg.det(R):.6g})")
    return R


def _skew(v: np.ndarray) -> np.ndarray:  # [3, 3]
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


# ---- COLMAP -------------------------------------------------------------------------------------


def read_colmap_model(path: Path) -> Calibration:
    """Read a COLMAP model folder (binary or text; COLMAP 4's frames/rigs included).

    ``path`` is the model folder itself, or a project folder holding ``sparse/0`` (or ``sparse``).
    The camera id is the first folder of an image's name (``cam0/000012.png`` -> ``cam0``), else its
    stem (``cam0.png`` -> ``cam0``). Several images of one camera (a rig layout of a locked-off camera)
    must share intrinsics, and their poses must agree within :data:`MAX_ROTATION_SPREAD_DEG` and
    :data:`MAX_CENTRE_SPREAD` of the scene extent; the first (lowest image id) is used.
    """
    path = Path(path)
    model = path if _is_colmap_model(path) else _colmap_model_in(path)
    if model is None:
        raise ValueError(f"{path} is not a COLMAP model: expected cameras.bin/.txt and images.bin/.txt in it, "
                         f"or in its sparse/0. {_accepted()}")
    pycolmap = require("pycolmap", "pip install pycolmap")
    try:
        rec = pycolmap.Reconstruction(str(model))
    except Exception as exc:  # pycolmap raises plain RuntimeErrors on broken files
        raise ValueError(f"pycolmap could not read the COLMAP model {model}: {exc}") from exc
    per_image = Cameras.from_colmap(rec)  # ids: image names without extension, ordered by image id
    notes = ["COLMAP's world has its own axes and an arbitrary scale (not metres) unless the model was "
             "scaled or geo-registered"]
    if model != path:
        notes.append(f"read the model in {model.relative_to(path).as_posix()}")
        others = sorted(p.name for p in model.parent.iterdir() if p != model and _is_colmap_model(p))
        if others:
            notes.append(f"{model.parent} holds other models too ({', '.join(others)}); they were not read")
    unposed = rec.num_images() - len(per_image)
    if unposed:
        notes.append(f"{unposed} image(s) of the model have no pose and were skipped")
    if not len(per_image):
        raise ValueError(f"the COLMAP model {model} has no posed images; there is no calibration in it.")
    keys = [image_id.split("/")[0] for image_id in per_image.camera_ids]  # first folder, else the stem
    names = [f"image {image_id!r}" for image_id in per_image.camera_ids]
    cameras, group_notes = _one_camera_per_key(per_image, keys, names, model)
    return Calibration(cameras, str(model.resolve()), "colmap", tuple(notes + group_notes))


def _is_colmap_model(folder: Path) -> bool:
    return all(any((folder / f"{name}.{ext}").is_file() for ext in ("bin", "txt")) for name in ("cameras", "images"))


def _colmap_model_in(folder: Path) -> Path | None:
    for candidate in (folder / "sparse" / "0", folder / "sparse"):
        if _is_colmap_model(candidate):
            return candidate
    return None


# ---- nerfstudio ---------------------------------------------------------------------------------


def read_transforms(path: Path) -> Calibration:
    """Read a nerfstudio ``transforms.json`` (a folder holding one is fine too).

    The camera id is a frame's ``reshoot_camera_id`` when it has one, else from its ``file_path``: the
    first folder below the images folder (``images/cam0/000001.png`` -> ``cam0``), else the stem
    (``images/cam0.png`` -> ``cam0``). Frames of one camera must agree as in :func:`read_colmap_model`.
    An ``applied_transform`` is undone, so poses are in the world they were made in.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    data = _load_json(path)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{path} has no 'frames' list; it is not a nerfstudio transforms.json.")
    keys = []
    for idx, frame in enumerate(frames):
        if not isinstance(frame, dict) or not (frame.get("reshoot_camera_id") or frame.get("file_path")):
            raise ValueError(f"{path}: frame {idx} has neither 'file_path' nor 'reshoot_camera_id'.")
        keys.append(str(frame.get("reshoot_camera_id") or _frame_camera_id(frame["file_path"])))
    # from_nerfstudio needs unique ids; the grouping by camera happens below
    unique = {**data, "frames": [{**frame, "reshoot_camera_id": f"frame{idx}"} for idx, frame in enumerate(frames)]}
    try:
        per_frame = Cameras.from_nerfstudio(unique)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: a frame lacks a field nerfstudio requires ({exc})") from exc
    names = [f"frame {idx} ({frame.get('file_path')!r})" for idx, frame in enumerate(frames)]
    cameras, group_notes = _one_camera_per_key(per_frame, keys, names, path)
    notes = ["nerfstudio's world has an arbitrary scale (not metres) unless it came from a metric source"]
    if "applied_transform" in data:
        notes.append("undid the file's applied_transform: poses are in the world they were made in (e.g. COLMAP's)")
    return Calibration(cameras, str(path.resolve()), "nerfstudio", tuple(notes + group_notes))


# ---- reshoot ------------------------------------------------------------------------------------


def _read_cameras_json(path: Path, data: Any) -> Calibration:
    if not _is_cameras_json(data):
        raise ValueError(f"{path} is not a reshoot cameras.json: expected 'cameras' entries with 'world_to_camera'.")
    try:
        cameras = Cameras.from_json(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: a camera lacks the field {exc} that Cameras.to_json writes") from exc
    return Calibration(cameras, str(Path(path).resolve()), "reshoot", ())


def _is_cameras_json(data: Any) -> bool:
    cams = data.get("cameras") if isinstance(data, dict) else None
    return isinstance(cams, list) and bool(cams) and all(isinstance(c, dict) and "world_to_camera" in c for c in cams)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read JSON {path}: {exc}") from exc


# ---- one camera per physical camera -------------------------------------------------------------


def _frame_camera_id(file_path: str) -> str:
    """The physical camera of a nerfstudio frame: the first folder below the images folder, else the stem.

    ``images/cam0/000001.png`` -> ``cam0``; ``images/cam0.png`` and ``cam0.png`` -> ``cam0``;
    ``cam0/000001.png`` -> ``cam0``. An absolute path with no images folder uses the file's folder.
    """
    pure = PurePosixPath(file_path.replace("\\", "/"))
    folders = [p for p in pure.parts[:-1] if p not in ("/", ".")]
    roots = [i for i, p in enumerate(folders) if _IMAGES_FOLDER.fullmatch(p)]
    if roots:
        folders = folders[roots[0] + 1:]
    elif pure.is_absolute():
        folders = folders[-1:]
    return folders[0] if folders else pure.stem


def _one_camera_per_key(
    per_image: Cameras, keys: Sequence[str], names: Sequence[str], source: Path
) -> tuple[Cameras, list[str]]:
    """Group per-image cameras by physical camera (``keys``), check each group is one fixed camera.

    Returns the first image of each group, renamed to its key, in order of first appearance, and a
    note when images were grouped. ``names`` label the images in errors.
    """
    centres = per_image.centers
    extent = float(np.linalg.norm(centres.max(axis=0) - centres.min(axis=0))) or 1.0
    groups: dict[str, list[int]] = {}
    for idx, key in enumerate(keys):
        groups.setdefault(key, []).append(idx)
    for key, idx in groups.items():
        _check_one_fixed_camera(per_image, key, idx, names, extent, source)
    first = [idx[0] for idx in groups.values()]
    cameras = Cameras(tuple(groups), per_image.K[first], per_image.distortion[first],
                      per_image.world_to_camera[first], per_image.image_size[first])
    grouped = {key: len(idx) for key, idx in groups.items() if len(idx) > 1}
    notes = []
    if grouped:
        counts = ", ".join(f"{key} ({n})" for key, n in grouped.items())
        notes.append(f"several images of one camera, read as a locked-off camera: {counts}; their poses agree "
                     f"within {MAX_ROTATION_SPREAD_DEG} deg and {MAX_CENTRE_SPREAD:g} of the scene extent, "
                     "and the first image's pose is used")
    return cameras, notes


def _check_one_fixed_camera(
    cams: Cameras, key: str, idx: Sequence[int], names: Sequence[str], extent: float, source: Path
) -> None:
    i0 = idx[0]
    for i in idx[1:]:
        same_intrinsics = (np.allclose(cams.K[i], cams.K[i0], rtol=1e-9, atol=1e-9)
                           and np.allclose(cams.distortion[i], cams.distortion[i0], rtol=1e-9, atol=1e-12)
                           and np.array_equal(cams.image_size[i], cams.image_size[i0]))
        if not same_intrinsics:
            raise ValueError(f"{source}: camera {key!r}: {names[i]} has other intrinsics or image size than "
                             f"{names[i0]}; one physical camera must have one calibration. Rename the images "
                             "so that each camera's images share a folder, or fix the model.")
    R0, c0 = cams.world_to_camera[i0, :3, :3], cams.centers[i0]
    R, c = cams.world_to_camera[list(idx), :3, :3], cams.centers[list(idx)]
    # angle between rotations, stable for tiny angles: |R - R0|_F = 2 sqrt(2) sin(angle / 2)
    chord = np.linalg.norm(R - R0, axis=(1, 2)) / (2 * np.sqrt(2))
    angle_deg = np.degrees(2 * np.arcsin(np.clip(chord, 0.0, 1.0)))
    shift = np.linalg.norm(c - c0, axis=1)
    worst = int(np.argmax(np.maximum(angle_deg / MAX_ROTATION_SPREAD_DEG, shift / (MAX_CENTRE_SPREAD * extent))))
    if angle_deg[worst] > MAX_ROTATION_SPREAD_DEG or shift[worst] > MAX_CENTRE_SPREAD * extent:
        raise ValueError(
            f"{source}: camera {key!r} has {len(idx)} images whose poses differ: {names[idx[worst]]} is turned "
            f"{angle_deg[worst]:.4g} deg and moved {shift[worst]:.4g} ({shift[worst] / extent:.2g} of the scene "
            f"extent) from {names[i0]} (allowed: {MAX_ROTATION_SPREAD_DEG} deg, {MAX_CENTRE_SPREAD:g} of the extent). "
            "A known calibration holds one fixed pose per camera, and a moving camera has no single pose: "
            "register this footage instead of importing a calibration, or give each image its own camera id.")


# ---- matching to the footage --------------------------------------------------------------------


def match_cameras(calibration: Calibration, camera_ids: Sequence[str]) -> Cameras:
    """The calibration's cameras for the footage's ``camera_ids``, in that order and named as the footage.

    A footage id matches a calibrated id exactly, else when both are equal after lower-casing and
    dropping ``_``, ``-`` and spaces (``cam_0`` == ``cam0`` == ``CAM-0``), provided that match is unique.
    Calibrated cameras the footage does not use are fine; footage cameras without a calibration, or
    two footage cameras on one calibrated camera, are a ValueError.
    """
    camera_ids = [str(c) for c in camera_ids]
    calibrated = calibration.cameras.camera_ids
    by_normal: dict[str, list[str]] = {}
    for cid in calibrated:
        by_normal.setdefault(_normalise_id(cid), []).append(cid)
    chosen: list[str] = []
    missing: list[str] = []
    for footage_id in camera_ids:
        if footage_id in calibrated:
            chosen.append(footage_id)
            continue
        candidates = by_normal.get(_normalise_id(footage_id), [])
        if len(candidates) > 1:
            raise ValueError(f"footage camera {footage_id!r} matches several calibrated cameras {candidates} of "
                             f"{calibration.source} once case, '_', '-' and spaces are ignored; rename the footage "
                             "camera to one of them exactly (ingest --names).")
        if candidates:
            chosen.append(candidates[0])
        else:
            missing.append(footage_id)
    if missing:
        raise ValueError(f"no calibration for footage camera(s) {missing} in {calibration.source} "
                         f"({calibration.kind}); its cameras are {list(calibrated)}. Rename the footage cameras "
                         "to match (ingest --names), or use a calibration of these cameras.")
    for calibrated_id in dict.fromkeys(chosen):
        users = [f for f, c in zip(camera_ids, chosen) if c == calibrated_id]
        if len(users) > 1:
            raise ValueError(f"footage cameras {users} all match calibrated camera {calibrated_id!r} of "
                             f"{calibration.source}; each footage camera needs its own calibrated camera.")
    picked = calibration.cameras.select(chosen)
    return Cameras(tuple(camera_ids), picked.K, picked.distortion, picked.world_to_camera, picked.image_size)


def _normalise_id(camera_id: str) -> str:
    return re.sub(r"[_\- ]", "", camera_id).lower()

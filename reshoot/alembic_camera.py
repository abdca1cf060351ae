"""An Alembic camera (``.abc``) for Maya, Houdini, Nuke and Blender, written in-process with PyAlembic.

The writer needs the optional extra ``pip install 'reshoot[alembic]'``. The extra installs ``alembic3d``, an
unofficial PyPI build of the Alembic project's own C++ library and its Python bindings (PyAlembic, with
PyImath bundled). Its import name is ``alembic3d``. The PyPI package named ``alembic`` is an unrelated
database-migration tool. ``alembic3d`` is imported only when a file is written (:func:`alembic_available`
says whether it can be).

What the file holds (docs/editorial.md, "Alembic camera"):

- an Ogawa archive with a ``Xform`` ``/NAME``, one transform sample per frame, and under it the ``Camera``
  ``/NAME/NAMEShape``, one sample per frame (focal length, film back, film offsets, clipping planes);
- **world axes: +Y up**, the norm for Alembic in Maya, Houdini, Nuke and Blender's importer: reshoot's
  +Z-up world turned by :data:`reshoot.cameras.ZUP_TO_YUP`, ``(x, y, z) -> (x, z, -y)``, in the world's
  units (metres for the sample shoot). Blender's importer turns it back to Z-up;
- the camera looks down its local -Z with +Y up (OpenGL axes), as every Alembic camera does, so
  ``camera_to_world = ZUP_TO_YUP @ inv(world_to_camera) @ OPENCV_TO_OPENGL``. Imath stores it for row
  vectors (``p' = p M``), so the file holds its transpose, with the translation in the last row;
- lenses in Alembic's units: ``focalLength`` in mm, apertures and film offsets in **cm**. The film back
  is ``sensor_width_mm`` wide and ``H / W`` of that high (square pixels); the principal point becomes the
  film offsets, ``(W / 2 - cx)`` and ``(cy - H / 2)`` pixels turned into cm. Alembic's screen window (Maya's
  camera model) then puts every world point on the pixel ``K @ [R | t]`` gives;
- time: sample ``k`` is at ``(first_frame + k) / fps`` seconds, a uniform time sampling of ``1 / fps``
  starting at ``first_frame / fps``, each the double nearest the exact fraction. A scene at the shot's rate
  shows it on frames ``first_frame, first_frame + 1, ...``. The archive's ``dccFPS`` hint is ``fps`` too.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np

from reshoot._deps import MissingDependencyError
from reshoot._version import __version__
from reshoot.atomic import _umask, naming_full_disk
from reshoot.cameras import OPENCV_TO_OPENGL, ZUP_TO_YUP, focal_mm_from_px
from reshoot.deliver import _check_cameras, _check_image_size
from reshoot.sync import _exact_fps

#: The Python module of the Alembic extra (the ``alembic3d`` wheel; not the PyPI package ``alembic``).
ALEMBIC_MODULE = "alembic3d"
#: How to install it.
INSTALL_HINT = "pip install 'reshoot[alembic]'"


@dataclass(frozen=True)
class AlembicCameraSamples:
    """One camera's Alembic values per frame, in Alembic's axes and units (see the module docstring)."""

    camera_to_world: np.ndarray  # [F, 4, 4] column vectors, +Y-up world, camera looks down -Z with +Y up
    focal_length_mm: np.ndarray  # [F]
    horizontal_aperture_cm: np.ndarray  # [F]
    vertical_aperture_cm: np.ndarray  # [F]
    horizontal_film_offset_cm: np.ndarray  # [F] positive: the principal point left of the image centre
    vertical_film_offset_cm: np.ndarray  # [F] positive: the principal point below the image centre


def alembic_camera_samples(
    world_to_camera: np.ndarray,  # [F, 4, 4]
    K: np.ndarray,  # [F, 3, 3]
    width: int,
    height: int,
    sensor_width_mm: float,
) -> AlembicCameraSamples:
    """Alembic's camera per frame from reshoot's: pure arithmetic, no file, no ``alembic3d``.

    Args:
        world_to_camera: reshoot poses, OpenCV camera axes, +Z-up world.  # [F, 4, 4]
        K: intrinsics in pixels, pixel-corner origin, square pixels.  # [F, 3, 3]
        width, height: the image in pixels.
        sensor_width_mm: the horizontal film back.
    """
    frames = len(world_to_camera)
    cm_per_px = sensor_width_mm / 10.0 / width
    return AlembicCameraSamples(
        camera_to_world=ZUP_TO_YUP @ np.linalg.inv(world_to_camera) @ OPENCV_TO_OPENGL,
        focal_length_mm=focal_mm_from_px(K[:, 0, 0], sensor_width_mm, width),
        horizontal_aperture_cm=np.full(frames, sensor_width_mm / 10.0),
        vertical_aperture_cm=np.full(frames, cm_per_px * height),
        horizontal_film_offset_cm=(width / 2 - K[:, 0, 2]) * cm_per_px,
        vertical_film_offset_cm=(K[:, 1, 2] - height / 2) * cm_per_px,
    )


def alembic_available() -> bool:
    """Whether :func:`write_alembic_camera` can run here: the Alembic extra (``alembic3d``) imports."""
    try:
        _load_alembic()
    except ImportError:
        return False
    return True


def write_alembic_camera(
    path: Path,
    world_to_camera: np.ndarray,  # [F, 4, 4]
    K: np.ndarray,  # [F, 3, 3] or [3, 3]
    image_size: tuple[int, int],
    fps: Fraction | int,
    *,
    first_frame: int = 1001,
    sensor_width_mm: float = 36.0,
    name: str = "reshootCamera",
    clipping_range: tuple[float, float] = (0.01, 10000.0),
) -> Path:
    """Write ``path`` (``.abc``): one camera animated over frames ``first_frame, ...`` (see the module docstring).

    The world is written **+Y up** (reshoot's +Z-up world turned by ``ZUP_TO_YUP``), as Maya, Houdini and
    Nuke expect of Alembic; the camera looks down its local -Z.

    Args:
        world_to_camera: reshoot poses, OpenCV axes, +Z-up world.  # [F, 4, 4]
        K: intrinsics in pixels, pixel-corner origin, square pixels (fx == fy); one for all frames or
            one per frame (a zoom).  # [F, 3, 3] or [3, 3]
        image_size: ``(width, height)`` in pixels.
        fps: the shot's exact frame rate (``Fraction(30000, 1001)``, not 29.97).
        first_frame: the frame number of pose 0; sample ``k`` is at ``(first_frame + k) / fps`` seconds.
        sensor_width_mm: the horizontal film back; with ``fx`` it gives the focal length in mm.
        name: the camera's name in the file (letters, digits, ``_``); the camera shape is ``{name}Shape``.
        clipping_range: (near, far) in scene units.
    Returns:
        ``path``. The file is written next to it under a temporary name and moved into place whole.
    Raises:
        MissingDependencyError: the Alembic extra is not installed.
    """
    what = "write_alembic_camera"
    path = Path(path)
    if path.suffix != ".abc":
        raise ValueError(f"{what}: {path.name}: an Alembic camera goes in a .abc file")
    if not name or len(name) > 58 or not all(c.isascii() and (c.isalnum() or c == "_") for c in name) \
            or name[0].isdigit():
        raise ValueError(f"{what}: name {name!r} must be 1-58 ASCII letters, digits and '_', not starting with a digit "
                         "(Blender keeps 63 bytes of a name, and the camera inside is NAMEShape)")
    poses, Ks = _check_cameras(what, world_to_camera, _per_frame_K(K, world_to_camera), first_frame)
    width, height = _check_image_size(what, image_size)
    rate = _exact_fps(fps, what)
    if not sensor_width_mm > 0:
        raise ValueError(f"{what}: sensor_width_mm must be > 0, got {sensor_width_mm!r}")
    near, far = (float(v) for v in clipping_range)
    if not 0 < near < far:
        raise ValueError(f"{what}: clipping_range must be 0 < near < far, got {clipping_range!r}")
    uneven = np.flatnonzero(np.abs(Ks[:, 0, 0] - Ks[:, 1, 1]) > 1e-6 * Ks[:, 0, 0])
    if uneven.size:
        k = int(uneven[0])
        raise ValueError(f"{what}: K of frame {first_frame + k} has fx = {Ks[k, 0, 0]} != fy = {Ks[k, 1, 1]}; the "
                         "Alembic camera is written with square pixels: give fx == fy (resample the images otherwise)")
    alembic = _import_alembic(what, path)
    samples = alembic_camera_samples(poses, Ks, width, height, float(sensor_width_mm))

    path.parent.mkdir(parents=True, exist_ok=True)
    with naming_full_disk(path.parent, path.name, "write to a folder on another disk"):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)  # Alembic opens the file itself, by name
        try:
            description = f"camera {name}: {len(poses)} frames from frame {first_frame} at {rate} fps, {width}x{height}"
            _write_archive(alembic, tmp, samples, rate, int(first_frame), name, (near, far), description)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def alembic_name(stem: str) -> str:
    """A camera name :func:`write_alembic_camera` takes, made from a file stem: other characters become ``_``, a
    leading digit gets ``camera_`` before it, and it is cut to 58 characters."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in stem)
    return (clean if clean and not clean[0].isdigit() else f"camera_{clean}")[:58]


def _write_archive(alembic: ModuleType, filename: str, samples: AlembicCameraSamples, rate: Fraction,
                   first_frame: int, name: str, clipping_range: tuple[float, float], description: str) -> None:
    """Write the archive to ``filename``; Alembic finishes the file when every object writing to it is released."""
    Abc, AbcGeom, AbcCoreAbstract = alembic.Abc, alembic.AbcGeom, alembic.AbcCoreAbstract
    M44d = type(AbcGeom.XformSample().getMatrix())  # the wheel's own PyImath (an unrelated `imath` may be on PyPI)
    archive = Abc.CreateArchiveWithInfo(filename, float(rate), f"reshoot {__version__}", description)
    try:
        sampling = archive.addTimeSampling(AbcCoreAbstract.TimeSampling(float(1 / rate), float(first_frame / rate)))
        xform = AbcGeom.OXform(archive.getTop(), name, sampling)
        camera = AbcGeom.OCamera(xform, f"{name}Shape", sampling)
        xform_schema, camera_schema = xform.getSchema(), camera.getSchema()
        for k, camera_to_world in enumerate(samples.camera_to_world):
            transform = AbcGeom.XformSample()
            transform.setMatrix(M44d(*camera_to_world.T.ravel().tolist()))  # Imath: row vectors, translation last
            xform_schema.set(transform)
            lens = AbcGeom.CameraSample()
            lens.setFocalLength(float(samples.focal_length_mm[k]))
            lens.setHorizontalAperture(float(samples.horizontal_aperture_cm[k]))
            lens.setVerticalAperture(float(samples.vertical_aperture_cm[k]))
            lens.setHorizontalFilmOffset(float(samples.horizontal_film_offset_cm[k]))
            lens.setVerticalFilmOffset(float(samples.vertical_film_offset_cm[k]))
            lens.setNearClippingPlane(clipping_range[0])
            lens.setFarClippingPlane(clipping_range[1])
            camera_schema.set(lens)
        del xform_schema, camera_schema, camera, xform  # children first: each holds the archive open
    finally:
        archive.reset()  # closes the file (an error above leaves a partial one, which the caller removes)


def _load_alembic() -> ModuleType:
    """``alembic3d`` with the submodules the writer uses (alembic3d 0.0.1 on PyPI is an empty name placeholder)."""
    module = importlib.import_module(ALEMBIC_MODULE)
    for submodule in ("Abc", "AbcGeom", "AbcCoreAbstract"):
        importlib.import_module(f"{ALEMBIC_MODULE}.{submodule}")
    return module


def _import_alembic(what: str, path: Path) -> ModuleType:
    try:
        return _load_alembic()
    except ImportError as exc:
        raise MissingDependencyError(f"{what}: {path}: format 'abc' needs the Alembic extra: {INSTALL_HINT} (it "
                                     f"installs the {ALEMBIC_MODULE} package, which could not be imported: {exc})"
                                     ) from exc


def _per_frame_K(K: np.ndarray, world_to_camera: np.ndarray) -> np.ndarray:  # [F, 3, 3]
    Ks = np.asarray(K, dtype=np.float64)
    if Ks.shape == (3, 3):
        return np.broadcast_to(Ks, (len(np.asarray(world_to_camera)), 3, 3)).copy()
    return Ks  # _check_cameras reports a wrong shape

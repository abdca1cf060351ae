"""SfM points made ready to seed Gaussian splats: stray points removed, near-duplicates merged (open3d).

    xyz, rgb = read_points_ply(ws.path("register") / "sparse_points.ply")
    cleaned = clean_points(xyz, rgb, PointCloudCleanConfig())
    print(cleaned.report.summary())   # removed 37 outliers (4.1%), voxel 0.0021 merged 812 points -> 8,021 points

Two steps, each optional:

1. **Statistical outlier removal** (``open3d ... remove_statistical_outlier``): a point whose mean
   distance to its ``nb_neighbors`` nearest neighbours is more than ``std_ratio`` standard deviations
   above the cloud's average is dropped. These are mostly mismatched features triangulated far off;
   seeded as splats, they become floaters.
2. **Voxel downsampling** (``voxel_down_sample``): the points in each cube of side ``voxel_size`` merge
   into one, at their mean position with their mean colour.

open3d is an optional dependency (``pip install 'reshoot[pointcloud]'``), imported on first use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reshoot._deps import require
from reshoot.atomic import atomic_write_bytes
from reshoot.splat.ply import read_ply

_OPEN3D_HINT = "pip install 'reshoot[pointcloud]'  (or: pip install open3d-cpu)"


@dataclass(frozen=True)
class PointCloudCleanConfig:
    """How :func:`clean_points` cleans a sparse point cloud."""

    nb_neighbors: int = 20
    """Neighbours over which each point's mean distance is measured for outlier removal (open3d's and
    the 3DGS tools' usual 20). Clouds with fewer points than this skip outlier removal."""
    std_ratio: float = 2.0
    """A point is an outlier when its mean neighbour distance is more than this many standard deviations
    above the average. Lower removes more; 2.0 removes the far strays and a few percent of the rest."""
    voxel_size: float | None = None
    """Side of the voxels points merge in, in world units. None: automatic, ``auto_voxel_fraction`` of the
    bounding-box diagonal after outlier removal (this merges only near-duplicates); 0: no downsampling."""
    auto_voxel_fraction: float = 1e-3
    """The automatic voxel size as a fraction of the bounding-box diagonal (used when voxel_size is None).
    In register's normalised world (farthest camera 1 unit from the points' median) that is a few mm."""

    def __post_init__(self) -> None:
        if not (isinstance(self.nb_neighbors, int) and self.nb_neighbors >= 1):
            raise ValueError(f"nb_neighbors must be an integer >= 1, got {self.nb_neighbors!r}")
        if not self.std_ratio > 0:
            raise ValueError(f"std_ratio must be > 0, got {self.std_ratio!r}")
        if self.voxel_size is not None and not self.voxel_size >= 0:
            raise ValueError(f"voxel_size must be None (auto), 0 (off) or > 0, got {self.voxel_size!r}")
        if not self.auto_voxel_fraction >= 0:
            raise ValueError(f"auto_voxel_fraction must be >= 0, got {self.auto_voxel_fraction!r}")


@dataclass(frozen=True)
class PointCloudCleanReport:
    """What :func:`clean_points` did, in numbers a person can check (``summary()``) and a manifest can
    store (``describe()``)."""

    points_in: int
    points_after_outliers: int
    points_out: int
    outlier_removal_skipped: str | None
    """Why outlier removal did not run, or None when it ran."""
    voxel_size: float
    """The voxel size used, in world units; 0 when no downsampling ran."""
    voxel_size_auto: bool
    """True when voxel_size was chosen from the cloud's extent (config voxel_size None)."""
    extent_in: tuple[float, float, float]
    """Bounding-box size along x, y, z before cleaning."""
    extent_out: tuple[float, float, float]
    """Bounding-box size along x, y, z after cleaning."""
    nb_neighbors: int
    std_ratio: float

    @property
    def outliers_removed(self) -> int:
        return self.points_in - self.points_after_outliers

    @property
    def points_merged(self) -> int:
        """Points that voxel downsampling folded into others."""
        return self.points_after_outliers - self.points_out

    def summary(self) -> str:
        """One line, e.g. ``removed 37 outliers (4.1%), voxel 0.02 merged 812 points -> 8,021 points``."""
        if self.outlier_removal_skipped:
            parts = [f"outlier removal skipped ({self.outlier_removal_skipped})"]
        else:
            share = 100.0 * self.outliers_removed / self.points_in
            parts = [f"removed {self.outliers_removed:,} outliers ({share:.1f}%)"]
        if self.voxel_size > 0:
            auto = " (auto)" if self.voxel_size_auto else ""
            parts.append(f"voxel {self.voxel_size:.3g}{auto} merged {self.points_merged:,} points")
        else:
            parts.append("no voxel downsampling")
        return f"{', '.join(parts)} -> {self.points_out:,} points"

    def describe(self) -> dict[str, Any]:
        """JSON-able: every field, the derived counts and the summary line."""
        out = asdict(self)
        out["extent_in"], out["extent_out"] = list(self.extent_in), list(self.extent_out)
        out["outliers_removed"], out["points_merged"] = self.outliers_removed, self.points_merged
        out["summary"] = self.summary()
        return out


@dataclass(frozen=True)
class CleanedPoints:
    """The points :func:`clean_points` kept, and what it did."""

    xyz: np.ndarray = field(repr=False)  # [M, 3] float64
    rgb: np.ndarray = field(repr=False)  # [M, 3] uint8
    report: PointCloudCleanReport


def clean_points(
    xyz: np.ndarray,  # [N, 3] float
    rgb: np.ndarray,  # [N, 3] uint8
    config: PointCloudCleanConfig = PointCloudCleanConfig(),
) -> CleanedPoints:
    """Remove outliers from a sparse point cloud, then merge points closer than a voxel.

    Points that survive outlier removal keep their exact position and colour; points merged by voxel
    downsampling take their voxel's mean position and mean colour (rounded to uint8). The output order
    follows open3d (voxel order after downsampling). Raises ``ValueError`` on 0 points, on wrong shapes
    or dtypes, and on NaN/Inf positions; a cloud with fewer than ``nb_neighbors`` points skips outlier
    removal and the report says so.
    """
    # 1. check inputs
    xyz, rgb = _check_points(xyz, rgb)
    o3d = require("open3d", _OPEN3D_HINT)
    points_in, extent_in = len(xyz), _extent(xyz)

    # 2. statistical outlier removal, by index so kept points stay bit-exact
    skipped = None
    if len(xyz) < config.nb_neighbors:
        skipped = f"{len(xyz)} points, fewer than nb_neighbors={config.nb_neighbors}"
    else:
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
        _, kept_idx = cloud.remove_statistical_outlier(nb_neighbors=config.nb_neighbors,
                                                       std_ratio=config.std_ratio)
        kept_idx = np.asarray(kept_idx, dtype=np.int64)
        xyz, rgb = xyz[kept_idx], rgb[kept_idx]
    points_after_outliers = len(xyz)

    # 3. voxel downsampling
    voxel_size, voxel_auto = _voxel_size(xyz, config)
    if voxel_size > 0:
        xyz, rgb = _voxel_down_sample(o3d, xyz, rgb, voxel_size)

    report = PointCloudCleanReport(
        points_in=points_in,
        points_after_outliers=points_after_outliers,
        points_out=len(xyz),
        outlier_removal_skipped=skipped,
        voxel_size=voxel_size,
        voxel_size_auto=voxel_auto,
        extent_in=extent_in,
        extent_out=_extent(xyz),
        nb_neighbors=config.nb_neighbors,
        std_ratio=config.std_ratio,
    )
    return CleanedPoints(xyz=xyz, rgb=rgb, report=report)


def read_points_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A plain point cloud ``.ply`` (such as register's ``sparse_points.ply``) as ``xyz [N, 3]`` float64
    and ``rgb [N, 3]`` uint8, from the vertex properties x, y, z and red, green, blue (uchar)."""
    path = Path(path)
    ply = read_ply(path, f"no point cloud at {path}; the register stage writes register/sparse_points.ply")
    if "vertex" not in [element.name for element in ply.elements]:
        raise ValueError(f"{path} has no 'vertex' element; it is not a point cloud")
    vertex = ply["vertex"].data
    present = vertex.dtype.names or ()
    missing = [name for name in ("x", "y", "z", "red", "green", "blue") if name not in present]
    if missing:
        raise ValueError(f"{path} lacks the vertex properties {missing} (it has {list(present)})")
    xyz = np.stack([np.asarray(vertex[axis], dtype=np.float64) for axis in "xyz"], axis=1)
    channels = [np.asarray(vertex[name]) for name in ("red", "green", "blue")]
    if any(channel.dtype != np.uint8 for channel in channels):
        raise ValueError(f"{path} stores colours as {channels[0].dtype}; expected uchar (0-255) red, green, blue")
    return xyz.reshape(-1, 3), np.stack(channels, axis=1).reshape(-1, 3)


def write_points_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """A plain point cloud ``.ply`` (x, y, z float, red, green, blue uchar), as ``read_points_ply`` reads it;
    written atomically.

    Args:
        xyz: [N, 3] positions; rgb: [N, 3] uint8 colours.
    """
    import io

    plyfile = require("plyfile", "pip install plyfile")
    vertex = np.empty(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for k, axis in enumerate("xyz"):
        vertex[axis] = xyz[:, k]
    for k, channel in enumerate(("red", "green", "blue")):
        vertex[channel] = rgb[:, k]
    buffer = io.BytesIO()
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def _check_points(xyz: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xyz, rgb = np.asarray(xyz), np.asarray(rgb)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must have shape [N, 3], got {list(xyz.shape)}")
    if rgb.shape != xyz.shape:
        raise ValueError(f"rgb must have shape [N={len(xyz)}, 3] (N from xyz), got {list(rgb.shape)}")
    if not np.issubdtype(xyz.dtype, np.floating):
        raise ValueError(f"xyz must hold floats, got dtype {xyz.dtype}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 (0-255), got dtype {rgb.dtype}")
    if len(xyz) == 0:
        raise ValueError(
            "no points to clean: the cloud is empty. Registration triangulated no 3D points; check the "
            "register stage's sparse_points.ply and its manifest, re-run register (more overlap between "
            "cameras, survey stills), or initialise the splats without SfM points."
        )
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ValueError(f"xyz has NaN or Inf in {int(bad.sum())} points (first at index {int(np.argmax(bad))})")
    return xyz.astype(np.float64, copy=False), rgb


def _extent(xyz: np.ndarray) -> tuple[float, float, float]:
    size = np.ptp(xyz, axis=0) if len(xyz) else np.zeros(3)
    return (float(size[0]), float(size[1]), float(size[2]))


def _voxel_size(xyz: np.ndarray, config: PointCloudCleanConfig) -> tuple[float, bool]:
    """The voxel size to use (0: none), and whether it was chosen automatically."""
    if config.voxel_size is not None:
        return float(config.voxel_size), False
    diagonal = float(np.linalg.norm(np.ptp(xyz, axis=0)))
    return config.auto_voxel_fraction * diagonal, True


def _voxel_down_sample(o3d: Any, xyz: np.ndarray, rgb: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge the points in each voxel into one at their mean position and mean colour (open3d)."""
    span = float(np.ptp(xyz, axis=0).max())
    cells = span / voxel_size
    if cells > 2**30:  # open3d's voxel indices are int32
        raise ValueError(
            f"voxel_size {voxel_size:g} is too small for a cloud {span:g} units across "
            f"({cells:.3g} voxels along one axis); choose a larger voxel_size, or 0 for no downsampling"
        )
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    cloud.colors = o3d.utility.Vector3dVector(rgb.astype(np.float64) / 255.0)
    merged = cloud.voxel_down_sample(voxel_size)
    colors = np.rint(np.asarray(merged.colors) * 255.0).clip(0, 255).astype(np.uint8)
    return np.asarray(merged.points, dtype=np.float64).reshape(-1, 3), colors.reshape(-1, 3)

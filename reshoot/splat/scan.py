"""A production's scan of the set (LiDAR or photogrammetry), loaded as points and aligned to the registered world.

    scan = load_set_scan(Path("set_scan.glb"))                  # a mesh: sampled on its surface
    xyz, _ = read_points_ply(ws.path("register") / "sparse_points.ply")
    alignment = align_scan_to_points(scan.xyz, xyz)             # or initial=read_similarity(Path("scan.json"))
    print(alignment.summary())   # global+icp: 89.1% of SfM points within 0.0322 of the scan, median error ...
    world_scan = aligned_scan(scan, alignment)                  # dense, coloured points of the set, world units

Why: the registered world holds only the sparse SfM points, and the cameras saw the set from a few places.
A scan of the set is dense and complete, so seeding the static Gaussians on it fills what no camera saw.

**Loading** (:func:`load_set_scan`): a point cloud ``.ply`` keeps its points, colours (grey 128 when it has
none) and normals, and is subsampled at random (seeded) to ``max_points``. A mesh (``.ply`` with faces,
``.obj``, ``.glb``, ``.gltf``, read with trimesh) is sampled on its surface, uniformly by area, with the
colour of the texture, vertex or face colours there (grey when it has none) and the face normal. Coordinates
stay as the file stores them (no Y-up/Z-up conversion, no unit change): the alignment absorbs both.

**Alignment** (:func:`align_scan_to_points`): a :class:`Similarity` maps scan coordinates to world
coordinates, ``world = scale * rotation @ scan + translation``. It is found from the registered SfM points:

1. *Global* (no ``initial``): both clouds are centred on their median and divided by their median distance
   to it, voxel-downsampled, described with FPFH features and matched with RANSAC (open3d), a few times with
   different seeds. This assumes the SfM points and the scan cover roughly the same part of the set; when they
   do not (a scan of the whole stage, cameras on one corner), give an initial similarity instead.
2. *ICP with scale* (numpy/scipy), from each start: every SfM point (sparse, noisy) is paired with its nearest
   scan point (dense), pairs beyond a shrinking distance are dropped, and the scan-to-world similarity is
   fitted to the pairs. Fitting scan to world, not SfM to scan, keeps the SfM noise from shrinking the scale.
3. *Check*: the start that ends with the most SfM points within ``inlier_distance_frac`` (of the SfM cloud's
   size) of the aligned scan is kept; that fraction must reach ``min_inlier_fraction`` (default 0.5), or
   :func:`align_scan_to_points` raises. A flat floor and one wall already hold many SfM points, so a wrong
   scan with a floor and a wall can pass; the check catches a scan of something else, not of a similar room.

open3d is an optional dependency (``pip install 'reshoot[pointcloud]'``), imported on first use.
Pure core except :func:`load_set_scan` and :func:`read_similarity`, which read files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reshoot._deps import require
from reshoot.splat.ply import read_ply

#: The file types :func:`load_set_scan` reads.
SUPPORTED_EXTENSIONS = (".ply", ".obj", ".glb", ".gltf")
#: The colour of points whose file gives them none.
GREY = 128

_OPEN3D_HINT = "pip install 'reshoot[pointcloud]'  (or: pip install open3d-cpu)"
_TRIMESH_HINT = "pip install trimesh"
_REEXPORT = "check that it opens in a 3D viewer (Blender, MeshLab) and export it again as .ply, .obj or .glb"
_SIMILARITY_FORMAT = (
    'either {"matrix": [[r00, r01, r02, tx], [r10, r11, r12, ty], [r20, r21, r22, tz], [0, 0, 0, 1]]} '
    '(scale folded into the 3x3 block) or {"scale": s, "rotation": [[3 x 3]], "translation": [tx, ty, tz]}, '
    "mapping scan coordinates to world coordinates: world = scale * rotation @ scan + translation"
)


# ---------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class SetScan:
    """Points of a set scan with their colours, in the scan's own coordinates (or the world's, once aligned)."""

    xyz: np.ndarray = field(repr=False)  # [N, 3] float64
    rgb: np.ndarray = field(repr=False)  # [N, 3] uint8
    normals: np.ndarray | None = field(repr=False)  # [N, 3] float64 unit vectors, or None (a cloud without)
    source: Path
    """The file the points came from."""
    kind: str
    """``"points"`` (a point cloud, subsampled) or ``"mesh"`` (points sampled on a mesh's surface)."""

    def __post_init__(self) -> None:
        if self.xyz.ndim != 2 or self.xyz.shape[1] != 3:
            raise ValueError(f"SetScan.xyz must have shape [N, 3], got {list(self.xyz.shape)}")
        if self.rgb.shape != self.xyz.shape or self.rgb.dtype != np.uint8:
            raise ValueError(f"SetScan.rgb must be [N={len(self.xyz)}, 3] uint8, got {list(self.rgb.shape)} "
                             f"{self.rgb.dtype}")
        if self.normals is not None and self.normals.shape != self.xyz.shape:
            raise ValueError(f"SetScan.normals must be [N={len(self.xyz)}, 3] or None, "
                             f"got {list(self.normals.shape)}")
        if self.kind not in ("points", "mesh"):
            raise ValueError(f"SetScan.kind must be 'points' or 'mesh', got {self.kind!r}")

    def __len__(self) -> int:
        return len(self.xyz)


def load_set_scan(path: Path, max_points: int = 200_000, seed: int = 0) -> SetScan:
    """Read a set scan as at most ``max_points`` coloured points (see the module docstring).

    Args:
        path: a ``.ply`` (point cloud or mesh), ``.obj``, ``.glb`` or ``.gltf`` file.
        max_points: a point cloud with more points is subsampled at random to this many; a mesh gets exactly
            this many points on its surface.
        seed: seeds the subsampling and the surface sampling, so a file always gives the same points.
    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: an unsupported extension, a file that cannot be parsed, no points or faces in it, or
            NaN/Inf coordinates; each message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no set scan at {path}; give the path of the scan's .ply, .obj, .glb or .gltf")
    extension = path.suffix.lower()
    if extension not in SUPPORTED_EXTENSIONS:
        raise ValueError(f"{path}: set scans of type {extension or '(no extension)'!r} are not supported; "
                         f"convert it to one of {', '.join(SUPPORTED_EXTENSIONS)} (e.g. in MeshLab or CloudCompare)")
    if not (isinstance(max_points, (int, np.integer)) and max_points >= 1):
        raise ValueError(f"max_points must be an integer >= 1, got {max_points!r}")
    rng = np.random.default_rng(seed)
    if extension == ".ply" and not _ply_has_faces(path):
        xyz, rgb, normals = _read_ply_cloud(path)
        kind = "points"
    else:
        xyz, rgb, normals, kind = _read_with_trimesh(path, max_points, rng)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise ValueError(f"{path} has NaN or Inf coordinates in {int(bad.sum()):,} of its {len(xyz):,} points "
                         f"(first at index {int(np.argmax(bad))}); clean the scan (e.g. CloudCompare) and export "
                         f"it again")
    if len(xyz) > max_points:
        keep_idx = np.sort(rng.choice(len(xyz), max_points, replace=False))
        xyz, rgb = xyz[keep_idx], rgb[keep_idx]
        normals = None if normals is None else normals[keep_idx]
    return SetScan(xyz=xyz, rgb=rgb, normals=normals, source=path, kind=kind)


def _ply_has_faces(path: Path) -> bool:
    """Whether a ``.ply`` header declares a non-empty ``face`` element (False for an unreadable header:
    the point-cloud reader then reports the problem)."""
    with open(path, "rb") as file:
        header = file.read(65536).split(b"end_header", 1)[0]
    for line in header.decode("ascii", errors="replace").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "element" and words[1] == "face":
            return words[2].isdigit() and int(words[2]) > 0
    return False


def _read_ply_cloud(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """xyz [N, 3] float64, rgb [N, 3] uint8 (grey without colours) and normals [N, 3] (or None) of a point
    cloud ``.ply``. Unlike :func:`reshoot.splat.pointcloud.read_points_ply` (register's own files), colours
    are optional and may be float (0-1) or 16-bit, as scanners write them."""
    ply = read_ply(path, f"no set scan at {path}")
    elements = {element.name: element for element in ply.elements}
    if "vertex" not in elements or len(elements["vertex"].data) == 0:
        raise ValueError(f"{path} holds no points (no 'vertex' element, or an empty one); "
                         f"check the export of the scan")
    vertex = elements["vertex"].data
    present = vertex.dtype.names or ()
    if not all(axis in present for axis in "xyz"):
        raise ValueError(f"{path} lacks the vertex properties x, y, z (it has {list(present)})")
    xyz = np.stack([np.asarray(vertex[axis], dtype=np.float64) for axis in "xyz"], axis=1)
    rgb = np.full(xyz.shape, GREY, np.uint8)
    for names in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
        if all(name in present for name in names):
            rgb = np.stack([_to_uint8(np.asarray(vertex[name])) for name in names], axis=1)
            break
    normals = None
    if all(name in present for name in ("nx", "ny", "nz")):
        normals = np.stack([np.asarray(vertex[name], dtype=np.float64) for name in ("nx", "ny", "nz")], axis=1)
        length = np.linalg.norm(normals, axis=1, keepdims=True)  # [N, 1]; 0 where a scanner wrote none
        normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    return xyz, rgb, normals


def _to_uint8(channel: np.ndarray) -> np.ndarray:  # [N] any dtype -> [N] uint8
    if channel.dtype == np.uint8:
        return channel
    if np.issubdtype(channel.dtype, np.floating):
        scale = 255.0 if np.nanmax(channel, initial=0.0) <= 1.0 else 1.0
        return np.rint(np.nan_to_num(channel) * scale).clip(0, 255).astype(np.uint8)
    if channel.dtype == np.uint16:
        return np.rint(channel / 257.0).astype(np.uint8)
    return channel.clip(0, 255).astype(np.uint8)


def _read_with_trimesh(path: Path, max_points: int, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """A mesh (or trimesh point cloud) file's geometry, node transforms applied: meshes are sampled on their
    surface; a file with points only gives its points."""
    trimesh = require("trimesh", _TRIMESH_HINT)
    try:  # unprocessed: processing would drop NaN vertices (and their faces) without a word
        geometries = trimesh.load_scene(str(path), process=False).dump()
    except Exception as exc:  # trimesh raises many types for a damaged or foreign file
        raise ValueError(f"{path} could not be read by trimesh ({type(exc).__name__}: {exc}); {_REEXPORT}") from exc
    for geometry in geometries:
        vertices = np.asarray(geometry.vertices, dtype=np.float64)
        if not np.isfinite(vertices).all():
            bad = int((~np.isfinite(vertices).all(axis=1)).sum())
            raise ValueError(f"{path} has NaN or Inf coordinates in {bad:,} of its {len(vertices):,} vertices; "
                             f"clean the scan (e.g. MeshLab, CloudCompare) and export it again")
    meshes = [g for g in geometries if isinstance(g, trimesh.Trimesh) and len(g.faces) and g.area > 0]
    clouds = [g for g in geometries if isinstance(g, trimesh.PointCloud) and len(g.vertices)]
    if meshes:
        xyz, rgb, normals = sample_surface_points(meshes, max_points, rng)
        return xyz, rgb, normals, "mesh"
    if clouds:
        xyz = np.concatenate([np.asarray(c.vertices, np.float64) for c in clouds])
        rgb = np.concatenate([_cloud_colours(c) for c in clouds])
        return xyz, rgb, None, "points"
    raise ValueError(f"{path} holds no faces with area and no points (an empty mesh); "
                     f"check that the scan was exported with its geometry")


def _cloud_colours(cloud: Any) -> np.ndarray:  # [N, 3] uint8
    colours = getattr(cloud, "colors", None)
    if colours is None or len(colours) != len(cloud.vertices):
        return np.full((len(cloud.vertices), 3), GREY, np.uint8)
    return np.asarray(colours)[:, :3].astype(np.uint8)


def sample_surface_points(meshes: list, count: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` points uniformly by area over all ``meshes`` (trimesh meshes), with colours and face normals:
    ``xyz [count, 3]``, ``rgb [count, 3]`` uint8 (the texture's, vertex or face colours, else grey), ``normals``."""
    trimesh = require("trimesh", _TRIMESH_HINT)
    areas = np.array([mesh.area for mesh in meshes])
    counts = rng.multinomial(count, areas / areas.sum())
    xyz, rgb, normals = [], [], []
    for mesh, mesh_count in zip(meshes, counts):
        if mesh_count == 0:
            continue
        samples, face_idx, barycentric = trimesh.sample.sample_surface(
            mesh, int(mesh_count), return_barycentric=True, seed=int(rng.integers(2**31)))
        xyz.append(np.asarray(samples, np.float64))
        rgb.append(_surface_colours(mesh, face_idx, barycentric))
        normals.append(np.asarray(mesh.face_normals, np.float64)[face_idx])
    return np.concatenate(xyz), np.concatenate(rgb), np.concatenate(normals)


def _surface_colours(mesh: Any, face_idx: np.ndarray, barycentric: np.ndarray) -> np.ndarray:
    """Colours [n, 3] uint8 of points on ``mesh.faces[face_idx]`` at ``barycentric`` [n, 3]: the texture's,
    else the interpolated vertex colours, else the face colours, else grey."""
    visual = mesh.visual
    if visual.kind == "texture":
        image = getattr(visual.material, "image", None)  # a simple material (.obj)
        if image is None:  # a PBR material (.glb, .gltf); its baseColorFactor is not applied
            image = getattr(visual.material, "baseColorTexture", None)
        if visual.uv is not None and image is not None:
            trimesh = require("trimesh", _TRIMESH_HINT)
            uv = (np.asarray(visual.uv)[mesh.faces[face_idx]] * barycentric[:, :, None]).sum(axis=1)
            return np.asarray(trimesh.visual.color.uv_to_interpolated_color(uv, image))[:, :3].astype(np.uint8)
        visual = visual.to_color()  # a material without a texture: its main colour
    if visual.kind == "vertex":
        corners = np.asarray(visual.vertex_colors)[mesh.faces[face_idx], :3].astype(np.float64)  # [n, 3, 3]
        return np.rint((corners * barycentric[:, :, None]).sum(axis=1)).clip(0, 255).astype(np.uint8)
    if visual.kind == "face":
        return np.asarray(visual.face_colors)[face_idx, :3].astype(np.uint8)
    return np.full((len(face_idx), 3), GREY, np.uint8)


# ---------------------------------------------------------------------------------------------- similarity


@dataclass(frozen=True)
class Similarity:
    """A similarity transform from scan coordinates to world coordinates:
    ``world = scale * rotation @ scan + translation``."""

    scale: float
    rotation: np.ndarray  # [3, 3] proper rotation (det +1)
    translation: np.ndarray  # [3]

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, dtype=np.float64)
        translation = np.asarray(self.translation, dtype=np.float64).reshape(-1)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"a similarity's scale must be finite and > 0, got {self.scale!r}")
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise ValueError(f"a similarity needs rotation [3, 3] and translation [3], got "
                             f"{list(rotation.shape)} and {list(translation.shape)}")
        if not np.isfinite(rotation).all() or not np.isfinite(translation).all():
            raise ValueError("a similarity's rotation and translation must be finite")
        if np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-4 or np.linalg.det(rotation) < 0:
            raise ValueError(f"not a rotation (orthonormal, det +1): {rotation.round(4).tolist()}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @property
    def matrix(self) -> np.ndarray:  # [4, 4]
        """The 4x4 homogeneous matrix, scale folded into the 3x3 block."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out

    def apply(self, xyz: np.ndarray) -> np.ndarray:  # [N, 3] -> [N, 3]
        """Map scan points to world points."""
        return self.scale * np.asarray(xyz, dtype=np.float64) @ self.rotation.T + self.translation

    def inverse(self) -> Similarity:
        """World to scan."""
        rotation = self.rotation.T
        return Similarity(1.0 / self.scale, rotation, -rotation @ self.translation / self.scale)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, tolerance: float = 1e-4) -> Similarity:
        """Decompose a 4x4 similarity (``[[s R, t], [0, 0, 0, 1]]``). Refuses shear, non-uniform scale,
        mirroring and a projective last row (relative ``tolerance``); the rotation is then made exactly
        orthonormal (the nearest rotation), as matrices printed by other tools carry rounding."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
            raise ValueError(f"a similarity matrix must be 4x4 and finite, got shape {list(matrix.shape)}")
        if np.abs(matrix[3] - [0, 0, 0, 1]).max() > tolerance:
            raise ValueError(f"not a similarity: the last row is {matrix[3].tolist()}, expected [0, 0, 0, 1]")
        block = matrix[:3, :3]
        determinant = np.linalg.det(block)
        if determinant <= 0:
            raise ValueError("not a similarity: the 3x3 block mirrors (det <= 0); the scan's handedness differs "
                             "from the world's, so flip one axis when exporting the scan or in the matrix")
        singular = np.linalg.svd(block, compute_uv=False)
        if singular.max() - singular.min() > tolerance * singular.max():
            raise ValueError(f"not a similarity: the 3x3 block scales unevenly or shears (singular values "
                             f"{np.round(singular, 6).tolist()}, a similarity has three equal ones)")
        scale = float(np.cbrt(determinant))
        u, _, vt = np.linalg.svd(block / scale)
        return cls(scale, u @ vt, matrix[:3, 3])

    def describe(self) -> dict[str, Any]:
        """JSON-able, in the form :func:`read_similarity` reads (with the matrix as well)."""
        return {"scale": self.scale, "rotation": self.rotation.tolist(), "translation": self.translation.tolist(),
                "matrix": self.matrix.tolist()}


def read_similarity(path: Path) -> Similarity:
    """A :class:`Similarity` from a JSON file: ``{"matrix": 4x4}`` or ``{"scale", "rotation", "translation"}``
    (scan to world). Raises ``FileNotFoundError``/``ValueError`` naming the file and showing the format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no similarity file at {path}; write a JSON file with {_SIMILARITY_FORMAT}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); expected {_SIMILARITY_FORMAT}") from exc
    parts = {"scale", "rotation", "translation"}
    keys = set(data) if isinstance(data, dict) else set()
    if not ("matrix" in keys or parts <= keys) or (keys & parts and not parts <= keys):
        found = sorted(keys) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} has {found}, not a similarity; expected {_SIMILARITY_FORMAT}")
    try:
        from_matrix = Similarity.from_matrix(np.array(data["matrix"], dtype=np.float64)) if "matrix" in keys else None
        from_parts = None
        if parts <= keys:
            from_parts = Similarity(float(data["scale"]), np.array(data["rotation"], dtype=np.float64),
                                    np.array(data["translation"], dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}. Expected {_SIMILARITY_FORMAT}") from exc
    if from_matrix is not None and from_parts is not None:
        if not np.allclose(from_matrix.matrix, from_parts.matrix, rtol=1e-5, atol=1e-5 * from_parts.scale):
            raise ValueError(f"{path} gives a matrix and a scale, rotation and translation that differ; keep one of "
                             f"them. Expected {_SIMILARITY_FORMAT}")
    return from_parts if from_parts is not None else from_matrix  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class ScanAlignConfig:
    """How :func:`align_scan_to_points` aligns a scan to the SfM points. Distances are fractions of the SfM
    cloud's size: the median distance of its points to their median point (robust to stray points)."""

    voxel_frac: float = 0.12
    """Global registration: both clouds, scaled to size 1, are voxel-downsampled at this size."""
    normal_radius_voxels: float = 3.0
    """Global registration: normals are estimated over this many voxels."""
    feature_radius_voxels: float = 8.0
    """Global registration: FPFH features describe this many voxels around a point."""
    ransac_iterations: int = 200_000
    """Global registration: the most RANSAC iterations (it stops early at 0.999 confidence)."""
    global_attempts: int = 3
    """Global registration: RANSAC runs this many times (seeds ``seed``, ``seed + 1``, ...); each result is
    refined with ICP and the one that puts the most SfM points on the scan is kept. One run can land a slide
    away along a wall, where ICP does not get out."""
    icp_distances_frac: tuple[float, ...] = (0.2, 0.1, 0.05)
    """ICP runs once per correspondence distance, in this order."""
    icp_iterations: int = 60
    """The most iterations of each ICP run."""
    inlier_distance_frac: float = 0.05
    """An SfM point within this distance of the aligned scan is an inlier."""
    symmetric_turns: bool = True
    """Global registration: also try the best start turned by 90, 180 and 270 degrees about each principal axis
    of the SfM points, each refined by ICP. Sets are boxy (a square floor, four walls): geometry alone fits a
    turned set nearly as well, and the SfM points' colours against the scan's (when given) tell them apart."""
    colour_margin: float = 0.05
    """With colours, the alignment kept is the one whose colours agree best among those within this much of the
    best inlier fraction; without colours, the best inlier fraction."""
    min_inlier_fraction: float = 0.5
    """Below this fraction of inliers, the alignment is refused (0: never refused)."""
    seed: int = 0
    """Seeds open3d's RANSAC, so an alignment is the same on every run."""

    def __post_init__(self) -> None:
        for name in ("voxel_frac", "normal_radius_voxels", "feature_radius_voxels", "inlier_distance_frac",
                     "ransac_iterations", "global_attempts", "icp_iterations"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"ScanAlignConfig.{name} must be > 0, got {value!r}")
        if not self.icp_distances_frac or not all(d > 0 for d in self.icp_distances_frac):
            raise ValueError(f"ScanAlignConfig.icp_distances_frac must hold distances > 0, got "
                             f"{self.icp_distances_frac!r}")
        if not 0 <= self.min_inlier_fraction <= 1:
            raise ValueError(f"ScanAlignConfig.min_inlier_fraction must be in [0, 1], got {self.min_inlier_fraction!r}")


@dataclass(frozen=True)
class Alignment:
    """A scan's placement in the world and how well the SfM points agree with it."""

    similarity: Similarity
    """Scan to world."""
    inlier_fraction: float
    """Fraction of SfM points within ``inlier_distance`` of the aligned scan."""
    median_error: float
    """Median distance of the SfM points to their nearest aligned scan point, world units."""
    inlier_distance: float
    """The inlier threshold used, world units."""
    method: str
    colour_agreement: float | None = None
    """Correlation of the SfM points' brightness with the aligned scan's nearest points' (inliers; None: no
    colours given)."""
    """``"given"`` (the initial similarity as it was), ``"icp"`` (refined from it) or ``"global+icp"``."""

    def summary(self) -> str:
        """One line, e.g. ``global+icp: 89.1% of SfM points within 0.0322 of the scan, median error 0.0148
        (scale 0.3715)``."""
        return (f"{self.method}: {100 * self.inlier_fraction:.1f}% of SfM points within {self.inlier_distance:.3g} "
                f"of the scan, median error {self.median_error:.3g} (scale {self.similarity.scale:.4g})")


def align_scan_to_points(
    scan_xyz: np.ndarray,  # [N, 3] scan coordinates
    sfm_xyz: np.ndarray,  # [M, 3] world coordinates
    initial: Similarity | None = None,
    refine: bool = True,
    config: ScanAlignConfig = ScanAlignConfig(),
    scan_rgb: np.ndarray | None = None,  # [N, 3] uint8
    sfm_rgb: np.ndarray | None = None,  # [M, 3] uint8
) -> Alignment:
    """The similarity that puts the scan on the registered SfM points (steps in the module docstring).

    Args:
        scan_xyz: the scan's points (:attr:`SetScan.xyz`), dense.
        sfm_xyz: the registered sparse points, world coordinates; may be noisy and hold stray points.
        initial: a known scan-to-world similarity (e.g. :func:`read_similarity`); None: global registration.
        refine: with ``initial``, refine it with ICP (scale allowed); False keeps it as it is.
        config: registration settings and the acceptance threshold.
        scan_rgb, sfm_rgb: the points' colours: they choose between alignments that fit the geometry alike
            (a boxy set turned by 90 degrees), by how well the SfM points' brightness matches the scan's there.
    Raises:
        ValueError: bad shapes, too few points, NaN/Inf, or fewer than ``config.min_inlier_fraction`` of the SfM
            points near the aligned scan (the message gives the median error and what to do).
    """
    # 1. check inputs; the SfM cloud's size sets every distance
    from scipy.spatial import cKDTree

    scan_xyz, sfm_xyz = _check_cloud("scan_xyz", scan_xyz), _check_cloud("sfm_xyz", sfm_xyz)
    sfm_size = _robust_frame(sfm_xyz)[1]
    tree = cKDTree(scan_xyz)
    # 2. starting similarities: the given one, or one per global registration attempt
    if initial is not None:
        method, starts = ("icp" if refine else "given"), [initial]
    else:
        method, starts = "global+icp", _global_registration(scan_xyz, sfm_xyz, config)
    # 3. ICP with scale from each start; 4. keep the one with the most SfM points on the aligned scan
    inlier_distance = config.inlier_distance_frac * sfm_size
    colours = (_luminance(scan_rgb), _luminance(sfm_rgb)) if scan_rgb is not None and sfm_rgb is not None else None

    def fitted(similarity: Similarity) -> Alignment:
        distances, nearest = tree.query(similarity.inverse().apply(sfm_xyz))
        distances = distances * similarity.scale  # [M] world units
        inliers = distances <= inlier_distance
        return Alignment(similarity=similarity, inlier_fraction=float(np.mean(inliers)),
                         median_error=float(np.median(distances)), inlier_distance=inlier_distance, method=method,
                         colour_agreement=_agreement(colours, nearest, inliers))

    candidates = [fitted(start if method == "given" else _refine_icp(tree, scan_xyz, sfm_xyz, start, sfm_size,
                                                                      config)) for start in starts]
    if method == "global+icp" and config.symmetric_turns:
        best = max(candidates, key=lambda a: a.inlier_fraction).similarity
        candidates += [fitted(_refine_icp(tree, scan_xyz, sfm_xyz, turned, sfm_size, config))
                       for turned in _turned(best, sfm_xyz)]
    alignment = _choose(candidates, config.colour_margin)
    if alignment.inlier_fraction < config.min_inlier_fraction:
        raise ValueError(_misaligned_message(alignment, config))
    return alignment


def aligned_scan(scan: SetScan, alignment: Alignment | Similarity) -> SetScan:
    """The scan in world coordinates: points mapped by the similarity, normals rotated."""
    similarity = alignment.similarity if isinstance(alignment, Alignment) else alignment
    normals = None if scan.normals is None else scan.normals @ similarity.rotation.T
    return SetScan(xyz=similarity.apply(scan.xyz), rgb=scan.rgb, normals=normals, source=scan.source,
                   kind=scan.kind)


def _misaligned_message(alignment: Alignment, config: ScanAlignConfig) -> str:
    found = (f"only {100 * alignment.inlier_fraction:.1f}% of the SfM points lie within "
             f"{alignment.inlier_distance:.3g} of the aligned set scan (median error {alignment.median_error:.3g} "
             f"world units; {100 * config.min_inlier_fraction:.0f}% needed)")
    if alignment.method == "global+icp":
        return (f"the set scan could not be aligned to the registered points: {found}. Give its placement as a "
                f"similarity (--set-scan-transform FILE.json, {_SIMILARITY_FORMAT}), or check that the scan is "
                f"of this set")
    return (f"the given set-scan similarity does not fit the registered points ({alignment.method}): {found}. "
            f"Check the similarity (it maps scan to world coordinates) and that the scan is of this set")


def _check_cloud(name: str, xyz: np.ndarray) -> np.ndarray:  # [N, 3] -> [N, 3] float64
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or not np.issubdtype(xyz.dtype, np.floating):
        raise ValueError(f"{name} must be a float array of shape [N, 3], got {list(xyz.shape)} {xyz.dtype}")
    if len(xyz) < 10:
        raise ValueError(f"{name} has {len(xyz)} points; aligning a scan needs at least 10")
    if not np.isfinite(xyz).all():
        raise ValueError(f"{name} has NaN or Inf in {int((~np.isfinite(xyz).all(axis=1)).sum())} points")
    return xyz.astype(np.float64, copy=False)


def _robust_frame(xyz: np.ndarray) -> tuple[np.ndarray, float]:
    """The median point [3] and the median distance to it (the cloud's size; > 0)."""
    centre = np.median(xyz, axis=0)
    size = float(np.median(np.linalg.norm(xyz - centre, axis=1)))
    if not size > 0:
        raise ValueError("the points coincide (median distance to their median point is 0); they have no shape "
                         "to align")
    return centre, size


def _global_registration(scan_xyz: np.ndarray, sfm_xyz: np.ndarray, config: ScanAlignConfig) -> list[Similarity]:
    """Coarse scan-to-world similarities, one per attempt: FPFH features matched with RANSAC (seeded with
    ``config.seed + attempt``), both clouds scaled to size 1."""
    o3d = require("open3d", _OPEN3D_HINT)
    registration = o3d.pipelines.registration
    voxel = config.voxel_frac
    scan_centre, scan_size = _robust_frame(scan_xyz)
    sfm_centre, sfm_size = _robust_frame(sfm_xyz)
    source, source_features = _fpfh(o3d, (sfm_xyz - sfm_centre) / sfm_size, config)
    target, target_features = _fpfh(o3d, (scan_xyz - scan_centre) / scan_size, config)
    starts = []
    for attempt in range(config.global_attempts):
        o3d.utility.random.seed(config.seed + attempt)
        result = registration.registration_ransac_based_on_feature_matching(
            source, target, source_features, target_features, False, 1.5 * voxel,
            registration.TransformationEstimationPointToPoint(False), 3,
            [registration.CorrespondenceCheckerBasedOnEdgeLength(0.9),
             registration.CorrespondenceCheckerBasedOnDistance(1.5 * voxel)],
            registration.RANSACConvergenceCriteria(config.ransac_iterations, 0.999))
        # [4, 4] normalised SfM -> normalised scan; in file units: the SfM's normalisation before, the scan's
        # undone after
        normalised = Similarity.from_matrix(np.asarray(result.transformation), tolerance=1e-6)
        rotation = normalised.rotation
        scale = normalised.scale * scan_size / sfm_size
        translation = scan_size * (normalised.translation - normalised.scale * rotation @ sfm_centre / sfm_size)
        starts.append(Similarity(scale, rotation, translation + scan_centre).inverse())
    return starts


def _fpfh(o3d: Any, xyz: np.ndarray, config: ScanAlignConfig) -> tuple[Any, Any]:
    """A voxel-downsampled open3d cloud of ``xyz`` (size-1 units) and its FPFH features."""
    voxel = config.voxel_frac
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz)).voxel_down_sample(voxel)
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=config.normal_radius_voxels * voxel,
                                                                max_nn=30))
    features = o3d.pipelines.registration.compute_fpfh_feature(
        cloud, o3d.geometry.KDTreeSearchParamHybrid(radius=config.feature_radius_voxels * voxel, max_nn=100))
    return cloud, features


def _refine_icp(tree: Any, scan_xyz: np.ndarray, sfm_xyz: np.ndarray, similarity: Similarity, sfm_size: float,
                config: ScanAlignConfig) -> Similarity:
    """ICP with scale, started at ``similarity`` (scan to world): each SfM point is matched to its nearest scan
    point (``tree`` holds ``scan_xyz``), pairs farther apart than the current distance are dropped, and the
    scan-to-world similarity is fitted to the pairs (Umeyama). Fitting this way round, the noise of the SfM
    points does not shrink the scale; open3d's ICP fits SfM to scan, and there it shrank a noisy cloud by 1-3 %.
    """
    for fraction in config.icp_distances_frac:
        max_distance = fraction * sfm_size  # world units
        for _ in range(config.icp_iterations):
            in_scan = similarity.inverse().apply(sfm_xyz)  # [M, 3]
            distances, scan_idx = tree.query(in_scan, distance_upper_bound=max_distance / similarity.scale)
            paired = np.isfinite(distances)
            if paired.sum() < 10:
                break
            updated = _umeyama(scan_xyz[scan_idx[paired]], sfm_xyz[paired])
            moved = np.abs(updated.apply(in_scan) - sfm_xyz).max()  # world units
            similarity = updated
            if moved < 1e-7 * sfm_size:
                break
    return similarity


def _umeyama(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The least-squares similarity with ``target ≈ scale * rotation @ source + translation`` (Umeyama 1991).

    Args:
        source: [K, 3] points; target: [K, 3] their partners.
    """
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)  # [3, 3]
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / (source_centred**2).sum(axis=1).mean())
    return Similarity(scale, rotation, target_mean - scale * rotation @ source_mean)


def _luminance(rgb: np.ndarray) -> np.ndarray:  # [N, 3] -> [N] float
    return np.asarray(rgb, np.float64) @ np.array([0.299, 0.587, 0.114])


def _agreement(colours: tuple[np.ndarray, np.ndarray] | None, nearest: np.ndarray, inliers: np.ndarray
               ) -> float | None:
    """Pearson correlation of the inlier SfM points' brightness with their nearest scan points' (None: no colours
    or too few inliers to say)."""
    if colours is None or inliers.sum() < 10:
        return None
    scan_luma, sfm_luma = colours
    a, b = sfm_luma[inliers], scan_luma[nearest[inliers]]
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _turned(similarity: Similarity, sfm_xyz: np.ndarray) -> list[Similarity]:
    """``similarity`` followed by turns of 90, 180 and 270 degrees about each principal axis of the SfM points
    (through their median point): where a boxy set fits as well turned."""
    centre = np.median(sfm_xyz, axis=0)
    _, _, axes = np.linalg.svd(sfm_xyz - sfm_xyz.mean(axis=0), full_matrices=False)
    out = []
    for axis in axes:
        for quarter in (1, 2, 3):
            turn = _axis_angle(axis, quarter * math.pi / 2)
            out.append(Similarity(similarity.scale, turn @ similarity.rotation,
                                  turn @ (similarity.translation - centre) + centre))
    return out


def _axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:  # [3], radians -> [3, 3]
    x, y, z = axis / np.linalg.norm(axis)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _choose(candidates: list[Alignment], margin: float) -> Alignment:
    """The best inlier fraction; with colours, the best colour agreement among those within ``margin`` of it."""
    best = max(candidates, key=lambda a: a.inlier_fraction)
    close = [a for a in candidates if a.inlier_fraction >= best.inlier_fraction - margin]
    if all(a.colour_agreement is not None for a in close):
        return max(close, key=lambda a: a.colour_agreement)
    return best

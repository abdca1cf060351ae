"""The standard 3DGS ``.ply``: the layout of Inria's original code, which every common viewer reads.

One ``vertex`` element, ``binary_little_endian``, every property a 32-bit float, in this order::

    x y z                      the mean (world units)
    nx ny nz                   always 0 (Inria writes them; nobody reads them)
    f_dc_0 f_dc_1 f_dc_2       SH band 0, R G B (raw coefficients, not colours)
    f_rest_0 .. f_rest_{3(K-1)-1}
                               SH bands 1.., *channel-major*: the K-1 coefficients of R, then those of
                               G, then those of B. ``f_rest_{c*(K-1)+k} = shN[:, k, c]``
    opacity                    logit (the viewer applies a sigmoid)
    scale_0 scale_1 scale_2    log scale (the viewer applies exp)
    rot_0 rot_1 rot_2 rot_3    quaternion w x y z, not necessarily normalised

K, the number of SH coefficients per channel, is (degree + 1)², so a file has 0, 9, 24 or 45 ``f_rest``
properties for SH degree 0, 1, 2 or 3; viewers infer the degree from that count.

The arrays are gsplat's raw parameters: ``means [N, 3]``, ``quats [N, 4]`` (wxyz), ``scales_log
[N, 3]``, ``opacities_logit [N]``, ``sh0 [N, 1, 3]``, ``shN [N, K-1, 3]`` (coefficient-major in memory,
as :func:`gsplat.rasterization` takes them; the file is channel-major, see above).

Why not ``gsplat.export_splats(format="ply")``: it writes the same properties in the same order and
the same ``f_rest`` ordering, but leaves out ``nx ny nz``, and it silently drops every splat with a
NaN or Inf in it. This module writes the full Inria layout and refuses non-finite values instead.
(``tests/test_splat_io.py`` checks that the two agree on everything else.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from reshoot._deps import require
from reshoot.atomic import atomic_write_bytes

#: The names :func:`read_splats_ply` returns, the same as :func:`write_splats_ply`'s arguments.
SPLAT_FIELDS = ("means", "quats", "scales_log", "opacities_logit", "sh0", "shN")

_FILE_DTYPE = np.dtype("<f4")


def splat_ply_property_names(sh_degree: int) -> list[str]:
    """The ``vertex`` properties of a 3DGS ``.ply`` with SH degree ``sh_degree`` (0..3), in file order."""
    if sh_degree not in (0, 1, 2, 3):
        raise ValueError(f"sh_degree must be 0, 1, 2 or 3, got {sh_degree!r}")
    num_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return [
        "x", "y", "z", "nx", "ny", "nz",
        "f_dc_0", "f_dc_1", "f_dc_2",
        *(f"f_rest_{j}" for j in range(num_rest)),
        "opacity",
        "scale_0", "scale_1", "scale_2",
        "rot_0", "rot_1", "rot_2", "rot_3",
    ]


def write_splats_ply(
    path: Path,
    means: torch.Tensor | np.ndarray,  # [N, 3]
    quats: torch.Tensor | np.ndarray,  # [N, 4] wxyz
    scales_log: torch.Tensor | np.ndarray,  # [N, 3]
    opacities_logit: torch.Tensor | np.ndarray,  # [N]
    sh0: torch.Tensor | np.ndarray,  # [N, 1, 3]
    shN: torch.Tensor | np.ndarray,  # [N, K-1, 3]
) -> None:
    """Write Gaussian splats to ``path`` as a standard 3DGS ``.ply`` (layout in the module docstring).

    Takes gsplat's raw parameters (torch tensors on any device, or numpy arrays), stores them as
    float32, and writes atomically (a temporary file in the same folder, then ``os.replace``).
    ``shN`` is ``[N, 0, 3]`` for SH degree 0. Raises ``ValueError`` on a wrong shape (naming the
    argument, the expected and the actual shape), on a coefficient count K that is not (degree + 1)²
    for a degree 0..3, and on NaN or Inf values.
    """
    values = (means, quats, scales_log, opacities_logit, sh0, shN)
    arrays = {name: _to_numpy(name, value) for name, value in zip(SPLAT_FIELDS, values)}
    n = _check_shapes(arrays)
    num_rest = arrays["shN"].shape[1]
    sh_degree = _sh_degree(num_rest + 1, what="shN")
    _check_finite(arrays)

    names = splat_ply_property_names(sh_degree)
    columns = np.zeros((n, len(names)), dtype=_FILE_DTYPE)
    columns[:, 0:3] = arrays["means"]
    # 3:6 are the normals, left 0
    columns[:, 6:9] = arrays["sh0"][:, 0, :]
    # [N, K-1, 3] -> [N, 3, K-1] -> [N, 3(K-1)]: all R coefficients, then G, then B
    columns[:, 9 : 9 + 3 * num_rest] = arrays["shN"].transpose(0, 2, 1).reshape(n, 3 * num_rest)
    tail = 9 + 3 * num_rest
    columns[:, tail] = arrays["opacities_logit"]
    columns[:, tail + 1 : tail + 4] = arrays["scales_log"]
    columns[:, tail + 4 : tail + 8] = arrays["quats"]

    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names]
    header.append("end_header\n")
    atomic_write_bytes(Path(path), "\n".join(header).encode("ascii") + columns.tobytes())


def read_splats_ply(path: Path) -> dict[str, torch.Tensor]:
    """Read a 3DGS ``.ply`` into gsplat's raw parameters, float32 CPU tensors keyed as
    :func:`write_splats_ply`'s arguments: ``means [N, 3]``, ``quats [N, 4]`` (wxyz), ``scales_log
    [N, 3]``, ``opacities_logit [N]``, ``sh0 [N, 1, 3]``, ``shN [N, K-1, 3]``.

    ``write_splats_ply(out, **read_splats_ply(src))`` copies a file exactly. Properties are found by
    name, so files that leave out the normals (gsplat, some exporters) or add extra properties read
    too. The quantised "compressed" ``.ply`` (SuperSplat, ``export_splats(format="ply_compressed")``)
    is refused with an error saying so.
    """
    path = Path(path)
    ply = read_ply(path, f"no 3DGS .ply at {path}")
    elements = [element.name for element in ply.elements]
    if "chunk" in elements:
        raise ValueError(
            f"{path} is a compressed 3DGS .ply (it has a 'chunk' element: quantised positions, "
            "rotations and colours). reshoot reads only the uncompressed layout; decompress it first, "
            "e.g. open it in SuperSplat and export a plain .ply."
        )
    if "vertex" not in elements:
        raise ValueError(f"{path} has no 'vertex' element (elements: {elements}); it is not a 3DGS .ply")
    vertex = ply["vertex"].data
    present = set(vertex.dtype.names or ())
    num_rest = sum(1 for name in present if name.startswith("f_rest_"))
    if num_rest % 3:
        raise ValueError(f"{path} has {num_rest} f_rest_* properties; a 3DGS .ply has a multiple of 3 (R, G, B)")
    num_rest //= 3
    sh_degree = _sh_degree(num_rest + 1, what=f"{path}'s f_rest_* properties")
    wanted = [name for name in splat_ply_property_names(sh_degree) if name not in ("nx", "ny", "nz")]
    missing = [name for name in wanted if name not in present]
    if missing:
        raise ValueError(
            f"{path} is not a 3DGS .ply: it lacks the vertex properties {missing} "
            f"(it has {sorted(present)}). A plain point cloud reads with reshoot.splat.pointcloud.read_points_ply."
        )

    def stack(names: list[str]) -> np.ndarray:
        return np.stack([np.asarray(vertex[name], dtype=np.float32) for name in names], axis=-1)

    n = len(vertex)
    f_rest = stack([f"f_rest_{j}" for j in range(3 * num_rest)]) if num_rest else np.zeros((n, 0), np.float32)
    out = {
        "means": stack(["x", "y", "z"]),
        "quats": stack(["rot_0", "rot_1", "rot_2", "rot_3"]),
        "scales_log": stack(["scale_0", "scale_1", "scale_2"]),
        "opacities_logit": np.asarray(vertex["opacity"], dtype=np.float32),
        "sh0": stack(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :],
        # [N, 3(K-1)] channel-major -> [N, 3, K-1] -> [N, K-1, 3]
        "shN": f_rest.reshape(n, 3, num_rest).transpose(0, 2, 1),
    }
    return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in out.items()}


def _to_numpy(name: str, value: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{name} must hold floats, got dtype {value.dtype}")
    return value.astype(np.float32, copy=False)


def _check_shapes(arrays: dict[str, np.ndarray]) -> int:
    """The splat count N, after checking every array's shape against it."""
    means, shN = arrays["means"], arrays["shN"]
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must have shape [N, 3], got {list(means.shape)}")
    n = means.shape[0]
    if shN.ndim != 3 or shN.shape[0] != n or shN.shape[2] != 3:
        raise ValueError(f"shN must have shape [N={n}, K-1, 3] (N from means), got {list(shN.shape)}")
    expected = {"quats": (n, 4), "scales_log": (n, 3), "opacities_logit": (n,), "sh0": (n, 1, 3)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(
                f"{name} must have shape {list(shape)} (N={n} from means), got {list(arrays[name].shape)}"
            )
    return n


def _sh_degree(num_coeffs: int, what: str) -> int:
    """The SH degree whose (degree + 1)² coefficients per channel is ``num_coeffs``."""
    degree = math.isqrt(num_coeffs) - 1
    if (degree + 1) ** 2 != num_coeffs or degree > 3:
        raise ValueError(
            f"{what} gives K={num_coeffs} SH coefficients per channel (K-1={num_coeffs - 1} beyond the DC "
            "term); a 3DGS .ply needs K = (degree + 1)² for degree 0..3: K-1 = 0, 3, 8 or 15"
        )
    return degree


def _check_finite(arrays: dict[str, np.ndarray]) -> None:
    for name, value in arrays.items():
        bad = ~np.isfinite(value).all(axis=tuple(range(1, value.ndim)))
        if bad.any():
            raise ValueError(
                f"{name} has NaN or Inf in {int(bad.sum())} splats (first at index {int(np.argmax(bad))}); "
                "remove those splats before writing (viewers mis-render them, and gsplat's exporter drops them)"
            )


def read_ply(path: Path, missing: str):
    """``plyfile.PlyData`` of ``path``; ``missing`` is the error message when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(missing)
    plyfile = require("plyfile", "pip install plyfile")
    try:
        return plyfile.PlyData.read(str(path))
    except Exception as exc:  # plyfile raises several types for a bad header or a short file
        raise ValueError(f"{path} could not be read as a .ply file: {exc}") from exc

"""The 3DGS .ply (layout, SH ordering, round trip, other readers) and SfM point cleaning before splat init."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reshoot.splat.pointcloud import write_points_ply  # the writer of register/sparse_points.ply
from reshoot.splat.ply import read_splats_ply, splat_ply_property_names, write_splats_ply
from reshoot.splat.pointcloud import PointCloudCleanConfig, clean_points, read_points_ply

INRIA_DEGREE_1 = [
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    "f_rest_0", "f_rest_1", "f_rest_2", "f_rest_3", "f_rest_4", "f_rest_5", "f_rest_6", "f_rest_7", "f_rest_8",
    "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
]


def random_splats(n: int, sh_degree: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return {
        "means": torch.randn(n, 3, generator=g),
        "quats": torch.randn(n, 4, generator=g),
        "scales_log": torch.randn(n, 3, generator=g) - 3,
        "opacities_logit": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g),
        "shN": torch.randn(n, k - 1, 3, generator=g) * 0.1,
    }


def header_and_body(path) -> tuple[list[str], bytes]:
    data = path.read_bytes()
    head, body = data.split(b"end_header\n", 1)
    return head.decode("ascii").splitlines(), body


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_round_trip_is_exact(tmp_path, sh_degree):
    splats = random_splats(50, sh_degree)
    write_splats_ply(tmp_path / "s.ply", **splats)
    back = read_splats_ply(tmp_path / "s.ply")
    assert list(back) == list(splats)
    for name, value in splats.items():
        assert back[name].dtype == torch.float32 and back[name].shape == value.shape, name
        assert torch.equal(back[name], value), name
    write_splats_ply(tmp_path / "copy.ply", **back)
    assert (tmp_path / "copy.ply").read_bytes() == (tmp_path / "s.ply").read_bytes()


def test_header_is_the_inria_layout(tmp_path):
    write_splats_ply(tmp_path / "s.ply", **random_splats(7, sh_degree=1))
    lines, body = header_and_body(tmp_path / "s.ply")
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 7"]
    assert lines[3:] == [f"property float {name}" for name in INRIA_DEGREE_1]
    assert splat_ply_property_names(1) == INRIA_DEGREE_1
    assert len(body) == 7 * len(INRIA_DEGREE_1) * 4
    assert len(splat_ply_property_names(3)) == 17 + 45 and len(splat_ply_property_names(0)) == 17


def test_f_rest_is_channel_major(tmp_path):
    # shN[n, k, c] = 100 n + 10 c + k: coefficient k of channel c (R=0, G=1, B=2)
    n, k_rest = 2, 3
    shN = torch.tensor([[[100.0 * i + 10 * c + k for c in range(3)] for k in range(k_rest)] for i in range(n)])
    splats = {**random_splats(n, sh_degree=1), "shN": shN}
    write_splats_ply(tmp_path / "s.ply", **splats)
    _, body = header_and_body(tmp_path / "s.ply")
    rows = np.frombuffer(body, dtype="<f4").reshape(n, len(INRIA_DEGREE_1))
    f_rest = rows[:, 9:18]
    # all R coefficients, then all G, then all B
    np.testing.assert_array_equal(f_rest[1], [100, 101, 102, 110, 111, 112, 120, 121, 122])
    np.testing.assert_array_equal(rows[:, 3:6], 0)  # normals
    np.testing.assert_array_equal(rows[:, 18], splats["opacities_logit"].numpy())
    np.testing.assert_array_equal(rows[:, 22:26], splats["quats"].numpy())  # wxyz as given


def test_agrees_with_gsplat_export_apart_from_normals(tmp_path):
    from gsplat import export_splats

    splats = random_splats(20, sh_degree=2)
    write_splats_ply(tmp_path / "ours.ply", **splats)
    export_splats(splats["means"], splats["scales_log"], splats["quats"], splats["opacities_logit"],
                  splats["sh0"], splats["shN"], format="ply", save_to=str(tmp_path / "gsplat.ply"))
    ours_lines, ours = header_and_body(tmp_path / "ours.ply")
    theirs_lines, theirs = header_and_body(tmp_path / "gsplat.ply")
    normals = [f"property float {name}" for name in ("nx", "ny", "nz")]
    assert [line for line in ours_lines if line not in normals] == theirs_lines
    ours_rows = np.delete(np.frombuffer(ours, "<f4").reshape(20, -1), [3, 4, 5], axis=1)
    np.testing.assert_array_equal(ours_rows, np.frombuffer(theirs, "<f4").reshape(20, -1))
    back = read_splats_ply(tmp_path / "gsplat.ply")  # no normals: still reads
    assert all(torch.equal(back[name], splats[name]) for name in splats)


def test_open3d_reads_the_file(tmp_path):
    o3d = pytest.importorskip("open3d")
    splats = random_splats(10, sh_degree=1)
    write_splats_ply(tmp_path / "s.ply", **splats)
    legacy = o3d.io.read_point_cloud(str(tmp_path / "s.ply"))
    np.testing.assert_allclose(np.asarray(legacy.points), splats["means"].numpy(), rtol=0, atol=0)
    if not hasattr(o3d.t.io, "read_point_cloud"):
        return
    cloud = o3d.t.io.read_point_cloud(str(tmp_path / "s.ply"))  # open3d's 3DGS attributes
    np.testing.assert_array_equal(cloud.point.opacity.numpy().ravel(), splats["opacities_logit"].numpy())
    np.testing.assert_array_equal(cloud.point.rot.numpy(), splats["quats"].numpy())
    np.testing.assert_array_equal(cloud.point.f_rest.numpy(), splats["shN"].numpy())  # back to [N, K-1, 3]
    # open3d hands scales back activated (exp), opacity not
    np.testing.assert_allclose(cloud.point.scale.numpy(), splats["scales_log"].exp().numpy(), rtol=1e-6)


def test_bad_shapes_and_values_are_named(tmp_path):
    splats = random_splats(5, sh_degree=1)
    with pytest.raises(ValueError, match=r"quats must have shape \[5, 4\].*got \[5, 3\]"):
        write_splats_ply(tmp_path / "s.ply", **{**splats, "quats": torch.zeros(5, 3)})
    with pytest.raises(ValueError, match=r"sh0 must have shape \[5, 1, 3\].*got \[5, 3\]"):
        write_splats_ply(tmp_path / "s.ply", **{**splats, "sh0": torch.zeros(5, 3)})
    with pytest.raises(ValueError, match=r"shN must have shape \[N=5, K-1, 3\].*got \[5, 9\]"):
        write_splats_ply(tmp_path / "s.ply", **{**splats, "shN": torch.zeros(5, 9)})
    with pytest.raises(ValueError, match="K-1 = 0, 3, 8 or 15"):
        write_splats_ply(tmp_path / "s.ply", **{**splats, "shN": torch.zeros(5, 2, 3)})
    opacities = splats["opacities_logit"].clone()
    opacities[3] = float("nan")
    with pytest.raises(ValueError, match="opacities_logit has NaN or Inf in 1 splats .first at index 3"):
        write_splats_ply(tmp_path / "s.ply", **{**splats, "opacities_logit": opacities})
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left behind


def test_reading_a_plain_point_cloud_as_splats_says_what_it_lacks(tmp_path):
    write_points_ply(tmp_path / "points.ply", np.zeros((3, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="lacks the vertex properties.*f_dc_0.*read_points_ply"):
        read_splats_ply(tmp_path / "points.ply")


# --- point cleaning ---------------------------------------------------------------------------


def cluster_with_outliers(seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """500 points in a unit-ish Gaussian blob, then 5 strays 50-100 units out; returns xyz, rgb, n_cluster."""
    rng = np.random.default_rng(seed)
    cluster = rng.normal(0.0, 0.3, size=(500, 3))
    directions = rng.normal(size=(5, 3))
    strays = directions / np.linalg.norm(directions, axis=1, keepdims=True) * rng.uniform(50, 100, size=(5, 1))
    xyz = np.concatenate([cluster, strays])
    rgb = rng.integers(0, 256, size=(len(xyz), 3), dtype=np.uint8)
    return xyz, rgb, len(cluster)


def test_clean_points_drops_far_outliers_and_keeps_the_cluster():
    pytest.importorskip("open3d")
    xyz, rgb, n_cluster = cluster_with_outliers()
    cleaned = clean_points(xyz, rgb, PointCloudCleanConfig(voxel_size=0))
    report = cleaned.report
    assert np.abs(cleaned.xyz).max() < 5  # every stray gone
    assert report.points_in == 505 and report.points_after_outliers == report.points_out == len(cleaned.xyz)
    assert report.outliers_removed >= 5 and report.points_out >= 0.95 * n_cluster  # the cluster mostly kept
    # kept points are the input points, bit for bit, with their own colours
    rows = {tuple(p): tuple(c) for p, c in zip(xyz, rgb)}
    assert all(rows[tuple(p)] == tuple(c) for p, c in zip(cleaned.xyz, cleaned.rgb))
    assert report.extent_in[0] > 50 and max(report.extent_out) < 5
    assert report.outlier_removal_skipped is None and report.voxel_size == 0 and report.points_merged == 0
    share = 100 * report.outliers_removed / 505
    assert report.summary() == (f"removed {report.outliers_removed} outliers ({share:.1f}%), "
                                f"no voxel downsampling -> {report.points_out} points")


def test_voxel_downsampling_merges_points():
    pytest.importorskip("open3d")
    # 4 tight groups of 10 points (spread 1e-3) on a 1-unit grid, plus nothing else: a voxel of 0.1 makes 4
    rng = np.random.default_rng(1)
    centres = np.array([[0.05, 0.05, 0.05], [1.05, 0.05, 0.05], [0.05, 1.05, 0.05], [0.05, 0.05, 1.05]])
    xyz = np.repeat(centres, 10, axis=0) + rng.uniform(-1e-3, 1e-3, size=(40, 3))
    rgb = np.repeat(np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90], [200, 210, 220]], np.uint8), 10, axis=0)
    cleaned = clean_points(xyz, rgb, PointCloudCleanConfig(nb_neighbors=50, voxel_size=0.1))
    report = cleaned.report
    assert report.outlier_removal_skipped == "40 points, fewer than nb_neighbors=50"
    assert (report.points_in, report.points_after_outliers, report.points_out) == (40, 40, 4)
    assert report.points_merged == 36 and report.voxel_size == 0.1 and not report.voxel_size_auto
    order = np.argsort(cleaned.xyz @ np.array([1.0, 10.0, 100.0]))
    np.testing.assert_allclose(cleaned.xyz[order], centres, atol=1e-3)
    np.testing.assert_array_equal(cleaned.rgb[order], rgb[::10])
    assert "voxel 0.1 merged 36 points -> 4 points" in report.summary()
    described = report.describe()
    assert described["points_merged"] == 36 and described["extent_in"] == list(report.extent_in)


def test_auto_voxel_size_is_a_fraction_of_the_diagonal():
    pytest.importorskip("open3d")
    xyz, rgb, _ = cluster_with_outliers()
    xyz = np.concatenate([xyz[:500], xyz[:500] + 1e-6])  # every cluster point doubled, no strays
    rgb = np.concatenate([rgb[:500], rgb[:500]])
    # outlier removal off (more neighbours than points), so the diagonal is the input's
    cleaned = clean_points(xyz, rgb, PointCloudCleanConfig(nb_neighbors=2000, auto_voxel_fraction=1e-3))
    report = cleaned.report
    assert report.voxel_size_auto
    assert report.voxel_size == pytest.approx(1e-3 * np.linalg.norm(np.ptp(xyz, axis=0)), rel=1e-12)
    assert 500 <= report.points_out < 1000  # the doubles merged
    assert "(auto)" in report.summary()


def test_tiny_cloud_passes_through():
    pytest.importorskip("open3d")
    xyz = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    cleaned = clean_points(xyz, rgb)
    assert cleaned.report.outlier_removal_skipped == "3 points, fewer than nb_neighbors=20"
    assert cleaned.report.points_out == 3
    order = np.argsort(cleaned.xyz[:, 0] + 2 * cleaned.xyz[:, 1])
    np.testing.assert_array_equal(cleaned.xyz[order], xyz)
    np.testing.assert_array_equal(cleaned.rgb[order], rgb)
    assert cleaned.report.summary().startswith("outlier removal skipped (3 points, fewer than nb_neighbors=20)")


def test_clean_points_errors():
    with pytest.raises(ValueError, match="no points to clean.*register"):
        clean_points(np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    with pytest.raises(ValueError, match=r"rgb must have shape \[N=2, 3\].*got \[3, 3\]"):
        clean_points(np.zeros((2, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="rgb must be uint8"):
        clean_points(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="voxel_size must be"):
        PointCloudCleanConfig(voxel_size=-1.0)


def test_read_points_ply_reads_registers_sparse_points(tmp_path):
    rng = np.random.default_rng(2)
    xyz = rng.normal(size=(30, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(30, 3), dtype=np.uint8)
    write_points_ply(tmp_path / "sparse_points.ply", xyz, rgb)
    xyz_back, rgb_back = read_points_ply(tmp_path / "sparse_points.ply")
    assert xyz_back.dtype == np.float64 and rgb_back.dtype == np.uint8
    np.testing.assert_array_equal(xyz_back, xyz)
    np.testing.assert_array_equal(rgb_back, rgb)
    with pytest.raises(FileNotFoundError, match="register/sparse_points.ply"):
        read_points_ply(tmp_path / "missing.ply")

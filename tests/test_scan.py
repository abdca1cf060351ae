"""Set scans: meshes and point clouds loaded as coloured points, and aligned to noisy SfM points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from scipy.spatial.transform import Rotation

from reshoot.splat.pointcloud import write_points_ply
from reshoot.splat.scan import (
    GREY,
    ScanAlignConfig,
    Similarity,
    align_scan_to_points,
    aligned_scan,
    load_set_scan,
    read_similarity,
)

#: the set's props and their face colours; the floor and the back wall are 30 cm thick, as a set's are solid
PALETTE = {"floor": (150, 120, 90), "wall": (200, 200, 180), "crate": (200, 30, 30), "column": (30, 200, 30),
           "drum": (30, 30, 200), "pole": (220, 200, 20)}
SCENE_SIZE = 4.0  # the set's longest side (the floor), scan units
FLOOR_TOP_AREA = 4.0 * 3.0
#: scan to world: the SfM world is smaller (register normalises it), turned 40 deg about a tilted axis, moved
TRUE = Similarity(0.37, Rotation.from_rotvec(np.deg2rad(40) * np.array([0.3, -0.5, 0.8]) / np.linalg.norm(
    [0.3, -0.5, 0.8])).as_matrix(), np.array([0.5, -1.2, 2.0]))


def _set_mesh() -> trimesh.Trimesh:
    """A small asymmetric set: floor, back wall (at +y), two boxes and two cylinders, one colour per part."""
    move = trimesh.transformations.translation_matrix
    parts = {
        "floor": trimesh.creation.box((4.0, 3.0, 0.3), move((0, 0, -0.15))),
        "wall": trimesh.creation.box((4.0, 0.3, 2.0), move((0, 1.65, 1.0))),
        "crate": trimesh.creation.box((0.6, 0.4, 0.8), move((-1.1, 0.2, 0.4))),
        "column": trimesh.creation.box((0.3, 0.3, 1.2), move((1.3, -0.6, 0.6))),
        "drum": trimesh.creation.cylinder(0.3, 0.5, sections=24, transform=move((0.4, 0.7, 0.25))),
        "pole": trimesh.creation.cylinder(0.12, 1.0, sections=16, transform=move((-0.3, -0.9, 0.5))),
    }
    for name, part in parts.items():
        part.visual.face_colors = (*PALETTE[name], 255)
    return trimesh.util.concatenate(list(parts.values()))


def _closest_faces(mesh: trimesh.Trimesh, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance [P] of each point to the mesh and the index [P] of the nearest face (brute force: tiny meshes)."""
    triangles = np.repeat(mesh.triangles[None], len(points), axis=0).reshape(-1, 3, 3)
    repeated = np.repeat(points, len(mesh.faces), axis=0)
    gaps = np.linalg.norm(trimesh.triangles.closest_point(triangles, repeated) - repeated, axis=1)
    gaps = gaps.reshape(len(points), len(mesh.faces))
    return gaps.min(axis=1), gaps.argmin(axis=1)


def _sfm_points(mesh: trimesh.Trimesh, count: int = 1500, seed: int = 0) -> np.ndarray:  # [count, 3] world
    """What register would triangulate: points on the faces the cameras (in front, above) see, with noise of 1 %
    of the set's size, 10 % stray points anywhere around it, in the world frame ``TRUE`` maps the scan into."""
    rng = np.random.default_rng(seed)
    seen = (mesh.face_normals[:, 2] > -0.5) & (mesh.face_normals[:, 1] < 0.5)  # no undersides, no backs
    points, _ = trimesh.sample.sample_surface(mesh, count, face_weight=mesh.area_faces * seen, seed=seed)
    points = points + rng.normal(0.0, 0.01 * SCENE_SIZE, points.shape)
    strays = count // 10
    low, high = mesh.bounds
    points[:strays] = rng.uniform(low - 0.1 * SCENE_SIZE, high + 0.1 * SCENE_SIZE, (strays, 3))
    return TRUE.apply(points)


def _errors(found: Similarity, truth: Similarity = TRUE) -> tuple[float, float, float]:
    """Rotation error (degrees), relative scale error, translation error as a fraction of the set's size in
    the world."""
    cos = (np.trace(found.rotation.T @ truth.rotation) - 1) / 2
    rotation_deg = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    translation = float(np.linalg.norm(found.translation - truth.translation) / (truth.scale * SCENE_SIZE))
    return rotation_deg, abs(found.scale / truth.scale - 1), translation


@pytest.fixture(scope="module")
def set_scan_and_sfm(tmp_path_factory):
    mesh = _set_mesh()
    path = tmp_path_factory.mktemp("scan") / "set.ply"
    mesh.export(path)
    return load_set_scan(path, max_points=30_000), _sfm_points(mesh)


# ---------------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("extension", ["ply", "obj", "glb", "gltf"])
def test_a_mesh_is_sampled_uniformly_on_its_surface_with_its_colours(tmp_path, extension):
    mesh = _set_mesh()
    path = tmp_path / f"set.{extension}"
    mesh.export(path)
    scan = load_set_scan(path, max_points=4000, seed=3)
    assert scan.kind == "mesh" and scan.source == path and len(scan) == 4000
    assert scan.xyz.dtype == np.float64 and scan.rgb.dtype == np.uint8
    # on the surface, with the normal of the face it lies on
    probe = np.arange(0, 4000, 20)
    distance, face_idx = _closest_faces(mesh, scan.xyz[probe])
    assert distance.max() < 1e-5
    assert (np.einsum("ij,ij->i", scan.normals[probe], mesh.face_normals[face_idx]) > 0.999).mean() > 0.98
    # uniform by area: the floor's top holds its share of the points (3 sigma of a binomial)
    share = FLOOR_TOP_AREA / mesh.area
    on_floor_top = np.mean((np.abs(scan.xyz[:, 2]) < 1e-6) & (scan.normals[:, 2] > 0.99))
    assert abs(on_floor_top - share) < 3 * np.sqrt(share * (1 - share) / 4000)
    # every part's colour, and nothing but them (obj stores colours as floats: off by one at most)
    palette = np.array(list(PALETTE.values()))
    gap = np.abs(scan.rgb[:, None, :].astype(int) - palette[None]).max(axis=2)  # [N, parts]
    assert gap.min(axis=1).max() <= 1
    assert set(gap.argmin(axis=1)) == set(range(len(PALETTE)))
    # seeded
    np.testing.assert_array_equal(load_set_scan(path, max_points=4000, seed=3).xyz, scan.xyz)
    assert not np.array_equal(load_set_scan(path, max_points=4000, seed=4).xyz, scan.xyz)


@pytest.mark.parametrize("extension", ["glb", "obj"])
def test_a_textured_mesh_takes_its_colours_from_the_texture(tmp_path, extension):
    texture = np.zeros((8, 8, 3), np.uint8)
    texture[:, :4], texture[:, 4:] = (220, 20, 20), (20, 20, 220)  # left half red, right half blue
    vertices = np.array([[0, 0, 0], [2, 0, 0], [2, 1, 0], [0, 1, 0]], float)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(texture))
    card = trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], visual=visual, process=False)
    card.export(tmp_path / f"card.{extension}")
    scan = load_set_scan(tmp_path / f"card.{extension}", max_points=2000)
    left, right = scan.xyz[:, 0] < 0.8, scan.xyz[:, 0] > 1.2
    assert left.sum() > 500 and right.sum() > 500
    assert (scan.rgb[left] == (220, 20, 20)).all() and (scan.rgb[right] == (20, 20, 220)).all()
    np.testing.assert_allclose(scan.normals, np.tile([0, 0, 1.0], (2000, 1)), atol=1e-9)


def test_a_mesh_without_colours_is_grey(tmp_path):
    trimesh.creation.icosphere(subdivisions=2).export(tmp_path / "ball.obj")
    scan = load_set_scan(tmp_path / "ball.obj", max_points=500)
    assert (scan.rgb == GREY).all() and len(scan) == 500
    np.testing.assert_allclose(np.linalg.norm(scan.xyz, axis=1), 1.0, atol=0.02)  # on the unit icosphere


def test_a_point_cloud_keeps_its_colours_and_is_subsampled_with_a_seed(tmp_path):
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, (5000, 3))
    rgb = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    write_points_ply(tmp_path / "lidar.ply", xyz, rgb)
    whole = load_set_scan(tmp_path / "lidar.ply")
    assert whole.kind == "points" and whole.normals is None
    np.testing.assert_allclose(whole.xyz, xyz, atol=1e-6)  # stored as float32
    np.testing.assert_array_equal(whole.rgb, rgb)
    subset = load_set_scan(tmp_path / "lidar.ply", max_points=1000, seed=1)
    assert len(subset) == 1000
    original_idx = np.argmin(np.abs(subset.xyz[:, None, 0] - whole.xyz[None, :, 0]), axis=1)
    assert len(set(original_idx)) == 1000  # distinct points of the cloud, each with its own colour
    np.testing.assert_array_equal(subset.xyz, whole.xyz[original_idx])
    np.testing.assert_array_equal(subset.rgb, rgb[original_idx])
    np.testing.assert_array_equal(load_set_scan(tmp_path / "lidar.ply", max_points=1000, seed=1).xyz, subset.xyz)
    assert not np.array_equal(load_set_scan(tmp_path / "lidar.ply", max_points=1000, seed=2).xyz, subset.xyz)


def test_a_point_cloud_without_colours_is_grey_and_keeps_its_normals(tmp_path):
    import plyfile

    vertex = np.zeros(300, dtype=[(name, "f4") for name in ("x", "y", "z", "nx", "ny", "nz")])
    vertex["x"] = np.linspace(0, 1, 300)
    vertex["nz"] = 2.0  # not unit length, as some scanners write them
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(tmp_path / "bare.ply"))
    scan = load_set_scan(tmp_path / "bare.ply")
    assert scan.kind == "points" and len(scan) == 300 and (scan.rgb == GREY).all()
    np.testing.assert_allclose(scan.xyz[:, 0], np.linspace(0, 1, 300), atol=1e-6)
    np.testing.assert_allclose(scan.normals, np.tile([0, 0, 1.0], (300, 1)))


def _write_bad(folder: Path, name: str) -> Path:
    path = folder / name
    if name == "empty.ply":
        write_points_ply(path, np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    elif name == "empty.obj":
        path.write_text("# a mesh exported without its geometry\n")
    elif name in ("junk.glb", "junk.ply"):
        path.write_bytes(b"\x00 not a model " * 20)
    elif name == "nan.ply":
        xyz = np.ones((50, 3))
        xyz[7, 1] = np.nan
        write_points_ply(path, xyz, np.zeros((50, 3), np.uint8))
    elif name == "nan.obj":
        box = trimesh.creation.box()
        box.vertices[3] = np.inf
        box.export(path)
    elif name != "missing.ply":
        path.write_bytes(b"scan")
    return path


@pytest.mark.parametrize("name, error, message", [
    ("missing.ply", FileNotFoundError, r"no set scan at .*missing\.ply"),
    ("scan.e57", ValueError, r"scan\.e57: set scans of type '\.e57' are not supported; convert it to one of "
                             r"\.ply, \.obj, \.glb, \.gltf"),
    ("empty.ply", ValueError, r"empty\.ply holds no points"),
    ("empty.obj", ValueError, r"empty\.obj holds no faces with area and no points \(an empty mesh\)"),
    ("junk.glb", ValueError, r"junk\.glb could not be read by trimesh \(.*\); check that it opens in a 3D viewer"),
    ("junk.ply", ValueError, r"junk\.ply could not be read as a \.ply file"),
    ("nan.ply", ValueError, r"nan\.ply has NaN or Inf coordinates in 1 of its 50 points \(first at index 7\)"),
    ("nan.obj", ValueError, r"nan\.obj has NaN or Inf coordinates in 1 of its 8 vertices"),
])
def test_a_bad_scan_file_is_named_with_what_to_do(tmp_path, name, error, message):
    with pytest.raises(error, match=message):
        load_set_scan(_write_bad(tmp_path, name))


# ---------------------------------------------------------------------------------------------- similarity


def test_a_similarity_maps_scan_to_world_and_back():
    points = np.random.default_rng(0).normal(size=(20, 3))
    world = TRUE.apply(points)
    np.testing.assert_allclose(world, 0.37 * points @ TRUE.rotation.T + TRUE.translation)
    np.testing.assert_allclose(TRUE.inverse().apply(world), points, atol=1e-12)
    np.testing.assert_allclose((TRUE.matrix @ np.c_[points, np.ones(20)].T).T[:, :3], world)
    again = Similarity.from_matrix(TRUE.matrix)
    assert again.scale == pytest.approx(0.37, rel=1e-12)
    np.testing.assert_allclose(again.rotation, TRUE.rotation, atol=1e-12)
    np.testing.assert_allclose(again.translation, TRUE.translation)


@pytest.mark.parametrize("matrix, message", [
    (np.diag([1.0, 2.0, 1.0, 1.0]), r"scales unevenly or shears \(singular values \[2.0, 1.0, 1.0\]"),
    (np.array([[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), "scales unevenly or shears"),
    (np.diag([-1.0, 1.0, 1.0, 1.0]), r"mirrors \(det <= 0\).*flip one axis"),
    (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0.5, 1.0]]), r"the last row is \[0.0, 0.0, 0.5, 1.0\]"),
    (np.eye(3), r"must be 4x4 and finite, got shape \[3, 3\]"),
])
def test_a_matrix_that_is_no_similarity_is_refused(matrix, message):
    with pytest.raises(ValueError, match=f"not a similarity|{message}") as caught:
        Similarity.from_matrix(matrix)
    assert caught.match(message)


def test_read_similarity_reads_both_forms(tmp_path):
    (tmp_path / "matrix.json").write_text(json.dumps({"matrix": TRUE.matrix.tolist()}))
    parts = {key: value for key, value in TRUE.describe().items() if key != "matrix"}
    (tmp_path / "parts.json").write_text(json.dumps(parts))
    (tmp_path / "both.json").write_text(json.dumps(TRUE.describe()))  # what describe() writes reads back
    for name in ("matrix.json", "parts.json", "both.json"):
        found = read_similarity(tmp_path / name)
        assert found.scale == pytest.approx(0.37, rel=1e-12)
        np.testing.assert_allclose(found.matrix, TRUE.matrix, atol=1e-12)


@pytest.mark.parametrize("text, message", [
    ('{"scale": 2, "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}', r"has \['rotation', 'scale'\], not a similarity"),
    ('[[1, 0, 0, 0]]', r"has list, not a similarity"),
    ('{"matrix": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}', r"not a similarity: the 3x3 block"),
    ('{"scale": -1, "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "translation": [0, 0, 0]}', r"scale must be"),
    ('{"matrix": [[1, 0, 0', r"is not valid JSON"),
    ('{"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "scale": 2}',
     r"has \['matrix', 'scale'\], not a similarity"),
    ('{"matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "scale": 2, '
     '"rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "translation": [0, 0, 0]}', r"that differ; keep one of them"),
])
def test_a_bad_similarity_file_is_named_with_the_expected_format(tmp_path, text, message):
    path = tmp_path / "scan_to_world.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        read_similarity(path)
    assert str(path) in str(caught.value)
    assert '{"matrix": [[r00, r01, r02, tx]' in str(caught.value) and '{"scale": s, "rotation"' in str(caught.value)
    with pytest.raises(FileNotFoundError, match=r"no similarity file at .*nowhere\.json; write a JSON file"):
        read_similarity(tmp_path / "nowhere.json")


# ---------------------------------------------------------------------------------------------- alignment


def test_global_alignment_recovers_the_similarity(set_scan_and_sfm):
    scan, sfm_xyz = set_scan_and_sfm
    alignment = align_scan_to_points(scan.xyz, sfm_xyz)
    rotation_deg, scale_error, translation_error = _errors(alignment.similarity)
    assert alignment.method == "global+icp"
    assert rotation_deg < 1.0 and scale_error < 0.01 and translation_error < 0.01, _errors(alignment.similarity)
    assert alignment.inlier_fraction > 0.8  # 10 % are strays
    # noise sigma is 1 % of the set per axis; distances are to the nearest of 30k scan points (~4 cm apart)
    assert alignment.median_error < 1.5 * 0.01 * SCENE_SIZE * TRUE.scale
    assert "global+icp" in alignment.summary()
    # deterministic
    np.testing.assert_array_equal(align_scan_to_points(scan.xyz, sfm_xyz).similarity.matrix,
                                  alignment.similarity.matrix)
    # the scan in the world: points mapped, normals turned with the set
    world = aligned_scan(scan, alignment)
    np.testing.assert_allclose(world.xyz, alignment.similarity.apply(scan.xyz))
    np.testing.assert_array_equal(world.rgb, scan.rgb)
    turned = np.einsum("ij,ij->i", world.normals, scan.normals @ TRUE.rotation.T)
    assert turned.min() > np.cos(np.deg2rad(1.0))
    assert world.kind == "mesh" and world.source == scan.source


def test_a_given_similarity_is_refined_or_kept(set_scan_and_sfm):
    scan, sfm_xyz = set_scan_and_sfm
    nudge = Rotation.from_rotvec(np.deg2rad([2.0, -1.5, 1.0])).as_matrix()
    initial = Similarity(TRUE.scale * 1.04, nudge @ TRUE.rotation,
                         TRUE.translation + 0.03 * SCENE_SIZE * TRUE.scale * np.array([1.0, -0.5, 0.3]))
    refined = align_scan_to_points(scan.xyz, sfm_xyz, initial=initial)
    rotation_deg, scale_error, translation_error = _errors(refined.similarity)
    assert refined.method == "icp"
    assert rotation_deg < 1.0 and scale_error < 0.01 and translation_error < 0.01, _errors(refined.similarity)
    assert refined.inlier_fraction > 0.8
    kept = align_scan_to_points(scan.xyz, sfm_xyz, initial=initial, refine=False)
    assert kept.method == "given" and kept.similarity is initial
    assert kept.inlier_fraction < refined.inlier_fraction - 0.1 and kept.median_error > 1.3 * refined.median_error


def test_a_scan_of_something_else_is_refused(set_scan_and_sfm):
    _, sfm_xyz = set_scan_and_sfm
    ball, _ = trimesh.sample.sample_surface(trimesh.creation.icosphere(subdivisions=3, radius=1.5), 20_000, seed=0)
    with pytest.raises(ValueError, match=r"could not be aligned.*only \d+\.\d% of the SfM points.*median error "
                                         r"[\d.]+ world units.*--set-scan-transform FILE\.json.*of this set"):
        align_scan_to_points(ball, sfm_xyz)


def test_a_wrong_given_similarity_is_refused(set_scan_and_sfm):
    scan, sfm_xyz = set_scan_and_sfm
    wrong = Similarity(1.0, np.eye(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"given set-scan similarity does not fit .*\(given\).*median error.*"
                                         r"maps scan to world"):
        align_scan_to_points(scan.xyz, sfm_xyz, initial=wrong, refine=False)


def test_bad_alignment_inputs_and_settings_are_named(set_scan_and_sfm):
    scan, sfm_xyz = set_scan_and_sfm
    with pytest.raises(ValueError, match=r"sfm_xyz has 5 points; aligning a scan needs at least 10"):
        align_scan_to_points(scan.xyz, sfm_xyz[:5])
    with pytest.raises(ValueError, match=r"scan_xyz must be a float array of shape \[N, 3\], got \[30000, 2\]"):
        align_scan_to_points(scan.xyz[:, :2], sfm_xyz)
    with pytest.raises(ValueError, match=r"ScanAlignConfig.voxel_frac must be > 0, got 0"):
        ScanAlignConfig(voxel_frac=0)
    with pytest.raises(ValueError, match=r"not a rotation \(orthonormal, det \+1\)"):
        Similarity(1.0, np.diag([1.0, 1.0, -1.0]), np.zeros(3))

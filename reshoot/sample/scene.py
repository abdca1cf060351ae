"""The sample set and actor, as textured triangle meshes with poses over time.

World: metres, +Z up, the floor at z = 0, the set centred on the origin. Pure geometry: no renderer
here (see :mod:`reshoot.sample.render`), so the same scene can feed any mesh renderer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from reshoot.sample import textures

#: Half the floor's side and the walls' height, metres.
SET_HALF_SIZE_M = 3.5
WALL_HEIGHT_M = 2.6


@dataclass(frozen=True)
class TexturedMesh:
    """Triangles with UVs and one texture; ``pose`` places the mesh in the world (or its parent)."""

    name: str
    vertices: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3] int
    uv: np.ndarray  # [V, 2]
    texture: np.ndarray  # [H, W, 3] uint8
    pose: np.ndarray  # [4, 4]


def parametric_mesh(surface: Callable[[np.ndarray, np.ndarray], np.ndarray], nu: int, nv: int) -> tuple:
    """Triangulate ``surface(u, v) -> xyz`` on a (nu+1) x (nv+1) grid of u, v in [0, 1].

    Returns ``(vertices [V, 3], faces [F, 3], uv [V, 2])``; seams get duplicated vertices so UVs stay clean.
    """
    u, v = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="xy")
    vertices = surface(u.ravel(), v.ravel())
    idx = np.arange((nu + 1) * (nv + 1)).reshape(nv + 1, nu + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return vertices, faces, np.stack([u.ravel(), v.ravel()], -1)


def quad(corner: np.ndarray, edge_u: np.ndarray, edge_v: np.ndarray) -> tuple:
    """A flat rectangle ``corner + u * edge_u + v * edge_v``, front face towards ``edge_u x edge_v``."""
    corner, edge_u, edge_v = (np.asarray(x, dtype=np.float64) for x in (corner, edge_u, edge_v))
    return parametric_mesh(lambda u, v: corner + u[:, None] * edge_u + v[:, None] * edge_v, 1, 1)


def box(size: tuple[float, float, float]) -> tuple:
    """An axis-aligned box with its base centred on the origin, each face a third/half of the UV square."""
    sx, sy, sz = size
    faces_def = [  # corner, edge_u, edge_v: outward normals
        ((-sx / 2, -sy / 2, 0), (sx, 0, 0), (0, 0, sz)),  # -y
        ((sx / 2, sy / 2, 0), (-sx, 0, 0), (0, 0, sz)),  # +y
        ((sx / 2, -sy / 2, 0), (0, sy, 0), (0, 0, sz)),  # +x
        ((-sx / 2, sy / 2, 0), (0, -sy, 0), (0, 0, sz)),  # -x
        ((-sx / 2, -sy / 2, sz), (sx, 0, 0), (0, sy, 0)),  # top
        ((-sx / 2, sy / 2, 0), (sx, 0, 0), (0, -sy, 0)),  # bottom
    ]
    parts = []
    for k, (corner, eu, ev) in enumerate(faces_def):
        vertices, faces, uv = quad(corner, eu, ev)
        uv = uv * [1 / 3, 1 / 2] + [(k % 3) / 3, (k // 3) / 2]  # a 3 x 2 atlas: every face its own detail
        parts.append((vertices, faces, uv))
    return _merge(parts)


def cylinder(radius: float, height: float, segments: int = 32) -> tuple:
    """A capped cylinder standing on the origin (z from 0 to ``height``)."""
    side = parametric_mesh(
        lambda u, v: np.stack([radius * np.cos(2 * np.pi * u), radius * np.sin(2 * np.pi * u), height * v], -1),
        segments, 1)
    side = (side[0], side[1], side[2] * [1, 0.8])
    cap_parts = []
    for z, sign in ((height, 1), (0.0, -1)):
        cap = parametric_mesh(
            lambda u, v, z=z, sign=sign: np.stack(
                [radius * v * np.cos(sign * 2 * np.pi * u), radius * v * np.sin(sign * 2 * np.pi * u),
                 np.full_like(u, z)], -1),
            segments, 1)
        cap_parts.append((cap[0], cap[1], cap[2] * [1, 0.2] + [0, 0.8]))
    return _merge([side, *cap_parts])


def ellipsoid(radii: tuple[float, float, float], segments: int = 24) -> tuple:
    """An ellipsoid centred on the origin."""
    rx, ry, rz = radii

    def surface(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        theta, phi = 2 * np.pi * u, np.pi * (v - 0.5)
        return np.stack([rx * np.cos(phi) * np.cos(theta), ry * np.cos(phi) * np.sin(theta), rz * np.sin(phi)], -1)

    return parametric_mesh(surface, segments, segments // 2)


def limb(radius: float, length: float) -> tuple:
    """A tapered limb hanging from its joint at the origin down to ``z = -length``, rounded ends."""
    def surface(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        theta = 2 * np.pi * u
        z = -length * v
        r = radius * (1.0 - 0.25 * v) * np.sqrt(np.clip(1 - ((2 * v - 1) ** 8), 0.05, 1))
        return np.stack([r * np.cos(theta), r * np.sin(theta), z], -1)

    return parametric_mesh(surface, 16, 8)


def _merge(parts: list[tuple]) -> tuple:
    vertices, faces, uvs, offset = [], [], [], 0
    for v, f, uv in parts:
        vertices.append(v)
        faces.append(f + offset)
        uvs.append(uv)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces), np.concatenate(uvs)


def build_set(rng: np.random.Generator, texture_px: int = 512) -> list[TexturedMesh]:
    """Floor, four walls and six props, each with its own texture."""
    h, H = SET_HALF_SIZE_M, WALL_HEIGHT_M
    meshes = [TexturedMesh("floor", *quad((-h, -h, 0), (2 * h, 0, 0), (0, 2 * h, 0)),
                           textures.floor_tiles(rng, 2 * texture_px), np.eye(4))]
    wall_colors = [
        [[0.55, 0.25, 0.2], [0.9, 0.75, 0.5], [0.3, 0.45, 0.6]],
        [[0.2, 0.4, 0.3], [0.85, 0.85, 0.7], [0.6, 0.3, 0.5]],
        [[0.3, 0.3, 0.55], [0.9, 0.6, 0.4], [0.95, 0.95, 0.9]],
        [[0.6, 0.55, 0.3], [0.25, 0.2, 0.2], [0.5, 0.75, 0.8]],
    ]
    walls = [((-h, h, 0), (2 * h, 0, 0)), ((h, h, 0), (0, -2 * h, 0)),
             ((h, -h, 0), (-2 * h, 0, 0)), ((-h, -h, 0), (0, 2 * h, 0))]
    for k, (corner, edge) in enumerate(walls):  # every wall faces the set's centre
        texture = textures.patterned(rng, texture_px, np.array(wall_colors[k]), shapes=90)
        meshes.append(TexturedMesh(f"wall{k}", *quad(corner, edge, (0, 0, H)), texture, np.eye(4)))
    props = [  # name, geometry, position (x, y), yaw, palette
        ("crate", box((0.8, 0.8, 0.8)), (2.1, 1.9), 0.3, [[0.5, 0.35, 0.15], [0.8, 0.6, 0.3], [0.3, 0.2, 0.1]]),
        ("cabinet", box((0.6, 1.2, 1.7)), (-2.7, -1.2), 0.0, [[0.2, 0.3, 0.5], [0.7, 0.8, 0.9], [0.9, 0.3, 0.2]]),
        ("drum", cylinder(0.35, 0.9), (2.2, -2.1), 0.0, [[0.7, 0.1, 0.1], [0.95, 0.85, 0.2], [0.1, 0.1, 0.1]]),
        ("pedestal", box((0.5, 0.5, 1.0)), (-2.0, 2.2), 0.5, [[0.85, 0.85, 0.8], [0.4, 0.4, 0.4], [0.2, 0.5, 0.3]]),
        ("bench", box((1.6, 0.5, 0.45)), (0.2, -2.8), 0.0, [[0.35, 0.5, 0.2], [0.8, 0.7, 0.5], [0.2, 0.15, 0.1]]),
        ("pillar", cylinder(0.18, 2.2), (-0.6, 2.7), 0.0, [[0.9, 0.9, 0.95], [0.3, 0.3, 0.6], [0.6, 0.2, 0.6]]),
    ]
    for name, geometry, (x, y), yaw, palette in props:
        texture = textures.patterned(rng, texture_px, np.array(palette), shapes=70, max_radius=0.05)
        meshes.append(TexturedMesh(name, *geometry, texture, _pose(yaw, (x, y, 0.0))))
    ball = ellipsoid((0.28, 0.28, 0.28))
    meshes.append(TexturedMesh("ball", *ball, textures.patterned(rng, texture_px, np.array(
        [[0.1, 0.3, 0.8], [0.9, 0.9, 0.2], [0.9, 0.2, 0.2]]), shapes=40), _pose(0.0, (-2.0, 2.2, 1.28))))
    return meshes


def landmarks() -> dict[str, list[float]]:
    """Named 3D points on the static set (world metres), for checking projections."""
    h = SET_HALF_SIZE_M
    return {
        "floor_centre": [0.0, 0.0, 0.0],
        "pedestal_ball_centre": [-2.0, 2.2, 1.28],
        "drum_top_centre": [2.2, -2.1, 0.9],
        "pillar_top_centre": [-0.6, 2.7, 2.2],
        "wall_corner_far": [h, h, 0.0],
        "crate_top_centre": [2.1, 1.9, 0.8],
        "bench_top_centre": [0.2, -2.8, 0.45],
        "floor_left_front": [-1.5, -1.5, 0.0],
        "floor_right_front": [1.5, -1.5, 0.0],
        "floor_left_back": [-1.5, 1.5, 0.0],
        "floor_right_back": [1.5, 1.5, 0.0],
    }


# ---- the actor --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ActorMotion:
    """How the actor moves: an elliptical walk with a walk cycle and a wave of the right arm.

    Times are world seconds; the shot starts at 0. Defined for any time, so cameras that roll early
    or stop late still see a consistent performance.
    """

    path_radii_m: tuple[float, float] = (1.3, 0.8)  #: the ellipse the actor walks on
    speed_m_s: float = 0.9  #: walking speed along the ellipse (approximately)
    start_angle_rad: float = -2.2  #: where on the ellipse the actor is at time 0
    cadence_hz: float = 0.95  #: strides per second
    wave_start_s: float = 0.6  #: the right arm rises to wave from this time...
    wave_end_s: float = 1.6  #: ...and is down again at this time

    def root(self, t: float) -> tuple[np.ndarray, float]:
        """Actor's root position on the floor (metres) and heading (radians about +Z) at time ``t``."""
        a, b = self.path_radii_m
        omega = self.speed_m_s / np.sqrt((a * a + b * b) / 2)
        angle = self.start_angle_rad + omega * t
        position = np.array([a * np.cos(angle), b * np.sin(angle), 0.0])
        velocity = np.array([-a * np.sin(angle), b * np.cos(angle)])
        return position, float(np.arctan2(velocity[1], velocity[0]))

    def segment_poses(self, t: float) -> dict[str, np.ndarray]:
        """World pose of every body segment at time ``t``.  # name -> [4, 4]"""
        position, heading = self.root(t)
        phase = 2 * np.pi * self.cadence_hz * t
        bob = 0.025 * abs(np.sin(phase))
        root = _pose(heading, position + [0, 0, bob])
        wave = _smooth_window(t, self.wave_start_s, self.wave_end_s)
        swing = np.radians(28) * np.sin(phase)
        poses = {"torso": root @ _translate(0, 0, 0.95), "head": root @ _translate(0.0, 0, 1.62)}
        for side, sign in (("left", 1.0), ("right", -1.0)):
            hip = root @ _translate(0, sign * 0.1, 0.93) @ _rot_y(-sign * swing)
            knee = np.radians(35) * max(0.0, np.sin(phase + (0 if sign > 0 else np.pi) + 0.8))
            poses[f"{side}_thigh"] = hip
            poses[f"{side}_shin"] = hip @ _translate(0, 0, -0.44) @ _rot_y(knee)
            arm_swing = np.radians(22) * np.sin(phase) * sign
            raise_arm = np.radians(150) * wave if side == "right" else 0.0
            shoulder = root @ _translate(0, sign * 0.22, 1.42) @ _rot_x(sign * (np.radians(8) + raise_arm))
            shoulder = shoulder @ _rot_y(arm_swing * (1 - wave if side == "right" else 1))
            wave_bend = np.radians(40) * wave * np.sin(2 * np.pi * 2.5 * t) if side == "right" else 0.0
            poses[f"{side}_upper_arm"] = shoulder
            poses[f"{side}_forearm"] = shoulder @ _translate(0, 0, -0.3) @ _rot_y(-(np.radians(20) + wave_bend))
        return poses


def build_actor(rng: np.random.Generator, texture_px: int = 256) -> list[TexturedMesh]:
    """The actor's body segments, each in its own local frame (pose = identity; see ``segment_poses``)."""
    shirt = textures.cloth(rng, texture_px, np.array([0.85, 0.3, 0.15]))
    trousers = textures.cloth(rng, texture_px, np.array([0.15, 0.25, 0.6]), stripes=3)
    skin = textures.cloth(rng, texture_px, np.array([0.85, 0.65, 0.5]), stripes=1)
    torso = ellipsoid((0.14, 0.22, 0.36))
    segments = [TexturedMesh("torso", *torso, shirt, np.eye(4)),
                TexturedMesh("head", *ellipsoid((0.1, 0.09, 0.13)), skin, np.eye(4))]
    for side in ("left", "right"):
        segments += [
            TexturedMesh(f"{side}_thigh", *limb(0.075, 0.46), trousers, np.eye(4)),
            TexturedMesh(f"{side}_shin", *limb(0.06, 0.48), trousers, np.eye(4)),
            TexturedMesh(f"{side}_upper_arm", *limb(0.05, 0.31), shirt, np.eye(4)),
            TexturedMesh(f"{side}_forearm", *limb(0.042, 0.3), skin, np.eye(4)),
        ]
    return segments


def _smooth_window(t: float, start: float, end: float) -> float:
    """0 outside [start, end], rising smoothly to 1 in the middle third."""
    if t <= start or t >= end:
        return 0.0
    ramp = (end - start) / 3
    x = min((t - start) / ramp, (end - t) / ramp, 1.0)
    return float(x * x * (3 - 2 * x))


def _pose(yaw: float, translation) -> np.ndarray:
    pose = _rot_z(yaw)
    pose[:3, 3] = translation
    return pose


def _translate(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def _rot(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m = np.eye(4)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def _rot_x(angle: float) -> np.ndarray:
    return _rot(0, angle)


def _rot_y(angle: float) -> np.ndarray:
    return _rot(1, angle)


def _rot_z(angle: float) -> np.ndarray:
    return _rot(2, angle)

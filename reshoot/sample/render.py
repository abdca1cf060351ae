"""Render the sample scene with pyrender, headless through EGL (Mesa's software OpenGL works).

This mesh renderer is independent of reshoot's splat renderer, so the sample's ground truth never
shares a bug with what it is used to check. Lens distortion is applied by rendering a slightly wider
pinhole image and resampling it through the camera's distortion model.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import numpy as np

from reshoot._deps import require
from reshoot.cameras import Cameras, undistort
from reshoot.sample.scene import TexturedMesh

_BACKGROUND_RGB = (0.62, 0.72, 0.85)  # a pale sky above the open-topped set
_SHADOW_MAP_PX = 512


@dataclass(frozen=True)
class RenderedView:
    rgb: np.ndarray  # [H, W, 3] uint8
    depth_m: np.ndarray  # [H, W] float32, distance along the optical axis; 0 where nothing was hit
    actor_mask: np.ndarray  # [H, W] bool, True where the actor is visible


class MeshRenderer:
    """A pyrender scene of the static set plus the actor's segments, whose poses change per frame."""

    def __init__(self, set_meshes: list[TexturedMesh], actor_meshes: list[TexturedMesh], supersample: int = 2):
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        if not hasattr(np, "infty"):  # pyrender 0.1.45 still uses the alias NumPy 2 removed
            np.infty = np.inf
        import pyrender.light
        import pyrender.renderer

        # pyrender's 2048² shadow map costs more than the image itself in software GL; 512² is
        # ~2 cm a texel over the set, plenty for soft shadows at these resolutions.
        pyrender.light.SHADOW_TEX_SZ = pyrender.renderer.SHADOW_TEX_SZ = _SHADOW_MAP_PX
        self._pyrender = pyrender = require(
            "pyrender", "pip install pyrender && pip install -U PyOpenGL==3.1.10 (see README)")
        self.supersample = supersample
        self.scene = pyrender.Scene(ambient_light=np.array([0.45, 0.45, 0.45]), bg_color=np.array(_BACKGROUND_RGB))
        # One primitive for the whole static set: pyrender's per-primitive cost dominates in software GL.
        self.scene.add(self._to_pyrender(merge_with_atlas(set_meshes, "set")))
        self.actor_nodes = {mesh.name: self.scene.add(self._to_pyrender(mesh), pose=mesh.pose)
                            for mesh in actor_meshes}
        sun = pyrender.DirectionalLight(color=np.array([1.0, 0.96, 0.88]), intensity=2.2)
        self.scene.add(sun, pose=_light_pose(direction=(0.35, 0.55, -1.0)))
        lamp = pyrender.PointLight(color=np.array([1.0, 0.9, 0.8]), intensity=9.0)
        self.scene.add(lamp, pose=_translation((0.0, 0.0, 2.5)))
        self._renderer = _offscreen_renderer()
        self._camera_node = None
        self._maps: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._set_depths: dict[tuple, np.ndarray] = {}

    def close(self) -> None:
        """Release the scene's GPU resources (the process-wide GL context stays for the next renderer)."""
        for node in list(self.scene.mesh_nodes):
            self.scene.remove_node(node)
        self._set_depths.clear()

    def show_actor(self, visible: bool) -> None:
        """Put the actor on the set or take them off it (e.g. for survey stills of the empty set)."""
        for node in self.actor_nodes.values():
            node.mesh.is_visible = visible

    def set_actor(self, segment_poses: dict[str, np.ndarray]) -> None:
        """Pose the actor's segments (world 4x4 per segment name)."""
        for name, pose in segment_poses.items():
            self.scene.set_pose(self.actor_nodes[name], pose)

    def render(self, cameras: Cameras, camera_idx: int) -> RenderedView:
        """Render one camera (distortion included), anti-aliased by supersampling."""
        pr = self._pyrender
        s = self.supersample
        width, height = (int(v) for v in cameras.image_size[camera_idx])
        K, dist = cameras.K[camera_idx], cameras.distortion[camera_idx]
        margin = 1.0 if not dist.any() else 1.12  # covers |k1| <= 0.1 at the corners
        wr, hr = int(round(width * s * margin)), int(round(height * s * margin))
        fx, fy = K[0, 0] * s, K[1, 1] * s
        cx, cy = K[0, 2] * s + (wr - width * s) / 2, K[1, 2] * s + (hr - height * s) / 2
        camera = pr.IntrinsicsCamera(fx, fy, cx, cy, znear=0.05, zfar=60.0)
        if self._camera_node is not None:
            self.scene.remove_node(self._camera_node)
        self._camera_node = self.scene.add(camera, pose=cameras.camera_to_world_opengl()[camera_idx])
        self._renderer.viewport_width, self._renderer.viewport_height = wr, hr
        color, depth = self._renderer.render(self.scene, flags=pr.RenderFlags.SHADOWS_DIRECTIONAL)
        # The set is static: where this render is nearer than the set alone, the actor is in front.
        set_depth = self._set_depth(camera_idx, cameras, (wr, hr))
        actor = (depth > 0) & ((set_depth == 0) | (depth < set_depth - 1e-3))

        cv2 = require("cv2", "pip install 'opencv-python-headless<5'")
        map_x, map_y = self._distortion_map(K, dist, (width, height), (fx, fy, cx, cy))
        color = cv2.remap(color, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        depth = cv2.remap(depth, map_x, map_y, cv2.INTER_NEAREST)
        mask = cv2.remap(actor.astype(np.uint8) * 255, map_x, map_y, cv2.INTER_NEAREST)
        rgb = cv2.resize(color, (width, height), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA) >= 128
        depth = depth[s // 2::s, s // 2::s]  # the sample nearest each output pixel's centre
        return RenderedView(rgb, depth.astype(np.float32), mask)

    def _set_depth(self, camera_idx: int, cameras: Cameras, viewport: tuple[int, int]) -> np.ndarray:
        """Depth of the set without the actor, rendered once per camera and viewport."""
        key = (cameras.world_to_camera[camera_idx].tobytes(), cameras.K[camera_idx].tobytes(), viewport)
        if key not in self._set_depths:
            visible = next(iter(self.actor_nodes.values())).mesh.is_visible
            self.show_actor(False)
            self._set_depths[key] = self._renderer.render(self.scene, flags=self._pyrender.RenderFlags.DEPTH_ONLY)
            self.show_actor(visible)
        return self._set_depths[key]

    def _distortion_map(self, K: np.ndarray, dist: np.ndarray, size: tuple[int, int], render_k: tuple) -> tuple:
        """Where each supersampled output pixel reads from in the pinhole render (cv2.remap maps)."""
        key = (K.tobytes(), dist.tobytes(), size, render_k)
        if key not in self._maps:
            s = self.supersample
            width, height = size
            u = (np.arange(width * s) + 0.5) / s  # output pixel-centre coordinates, pixel-corner origin
            v = (np.arange(height * s) + 0.5) / s
            uu, vv = np.meshgrid(u, v)
            yd = (vv - K[1, 2]) / K[1, 1]
            xd = (uu - K[0, 2]) / K[0, 0]
            x, y = undistort(xd, yd, dist)
            fx, fy, cx, cy = render_k
            # cv2.remap indexes pixel centres from 0: subtract the half pixel of the corner convention.
            self._maps[key] = ((fx * x + cx - 0.5).astype(np.float32), (fy * y + cy - 0.5).astype(np.float32))
        return self._maps[key]

    def _to_pyrender(self, mesh: TexturedMesh):
        pr = self._pyrender
        trimesh = require("trimesh", "pip install trimesh")
        normals = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).vertex_normals
        material = pr.MetallicRoughnessMaterial(
            baseColorTexture=pr.Texture(source=mesh.texture, source_channels="RGB"),
            metallicFactor=0.0, roughnessFactor=0.8, doubleSided=True)
        primitive = pr.Primitive(positions=mesh.vertices.astype(np.float32), normals=normals.astype(np.float32),
                                 texcoord_0=mesh.uv.astype(np.float32), indices=mesh.faces.astype(np.uint32),
                                 material=material)
        return pr.Mesh([primitive], name=mesh.name)


def merge_with_atlas(meshes: list[TexturedMesh], name: str) -> TexturedMesh:
    """One mesh in world coordinates whose texture is an atlas of the meshes' textures (same look)."""
    tile = max(m.texture.shape[0] for m in meshes)
    cols = int(np.ceil(np.sqrt(len(meshes))))
    rows = int(np.ceil(len(meshes) / cols))
    atlas = np.zeros((rows * tile, cols * tile, 3), dtype=np.uint8)
    vertices, faces, uvs, offset = [], [], [], 0
    for k, mesh in enumerate(meshes):
        r, c = divmod(k, cols)
        h, w = mesh.texture.shape[:2]
        atlas[r * tile:r * tile + h, c * tile:c * tile + w] = mesh.texture
        # pyrender uploads textures flipped (v = 0 is the image's last row): keep that in the atlas.
        u, v = np.clip(mesh.uv, 0, 1).T
        column = c * tile + u * (w - 1) + 0.5
        row = r * tile + (1 - v) * (h - 1) + 0.5
        uv = np.stack([column / atlas.shape[1], 1 - row / atlas.shape[0]], axis=-1)
        vertices.append(mesh.vertices @ mesh.pose[:3, :3].T + mesh.pose[:3, 3])
        faces.append(mesh.faces + offset)
        uvs.append(uv)
        offset += len(mesh.vertices)
    return TexturedMesh(name, np.concatenate(vertices), np.concatenate(faces), np.concatenate(uvs), atlas, np.eye(4))


_OFFSCREEN = None


def _offscreen_renderer():
    """One EGL context per process: pyrender cannot make a second after deleting the first."""
    global _OFFSCREEN
    if _OFFSCREEN is None:
        import pyrender

        _OFFSCREEN = pyrender.OffscreenRenderer(64, 64)
        # Release it before interpreter shutdown: pyrender's own __del__ then fails noisily.
        atexit.register(_OFFSCREEN.delete)
    return _OFFSCREEN


def _translation(xyz) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = xyz
    return pose


def _light_pose(direction) -> np.ndarray:
    """Pose of a directional light shining along ``direction`` (lights shine down their -z axis)."""
    d = np.asarray(direction, dtype=np.float64)
    z = -d / np.linalg.norm(d)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    pose[:3, 3] = -3 * d
    return pose

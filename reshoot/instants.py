"""Synced instants: what moves, matched between cameras at the same instant, pooled into locked cameras' images.

A locked-off camera registers from one image (its clean plate). When the cameras share little static
background (a calibration board waved in a room, an actor on a plain set), the moving content is the
best correspondence there is, but only between cameras *at the same instant*. This module:

1. extracts features inside each sampled frame's motion mask (``instants/images/<camera>/<frame>.png``,
   masks beside them) into ``instants.db``;
2. matches each frame only with the other cameras' frames of the same instant and verifies each pair;
3. appends those keypoints and descriptors to each camera's plate image in the main database, adds the
   verified matches (offset to the appended keypoints) to the plate-to-plate matches, and verifies every
   camera pair again as one two-view geometry: the cameras do not move, so one geometry must explain all
   instants.

COLMAP then maps the plates as usual. The locked poses hold exactly (one image per camera) and the moving
content adds points (coloured from the plate, which does not show them).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

INSTANTS_DIR = "instants"


def pool_instants(pycolmap, database: Path, instants_dir: Path, camera_model: str) -> dict[str, dict[str, int]]:
    """Add what moved at each synced instant to ``database``'s images (see the module docstring).

    ``instants_dir`` holds ``images/<camera>/<frame>.png`` and ``masks/<camera>/<frame>.png.png``; the main
    database's image of camera ``c`` is named ``c/<anything>``. Returns, per camera pair ``"a|b"``, the
    matches from the plates, from the instants, and the inliers of the joint verification.
    """
    side_db = instants_dir / "instants.db"
    side_db.unlink(missing_ok=True)
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    reader.mask_path = str(instants_dir / "masks")
    pycolmap.extract_features(side_db, instants_dir / "images", camera_mode=pycolmap.CameraMode.PER_FOLDER,
                              reader_options=reader, device=pycolmap.Device.cpu)
    side_names = _image_names(pycolmap, side_db)
    pairs_file = instants_dir / "pairs.txt"
    pairs_file.write_text("".join(f"{a} {b}\n" for a, b in _same_instant_pairs(side_names.values())))
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = pairs_file
    pycolmap.match_image_pairs(side_db, pairing_options=pairing, device=pycolmap.Device.cpu)
    return _merge_into(pycolmap, database, side_db, side_names)


def _image_names(pycolmap, database: Path) -> dict[int, str]:
    db = pycolmap.Database.open(database)
    try:
        return {image.image_id: image.name for image in db.read_all_images()}
    finally:
        db.close()


def _same_instant_pairs(names) -> list[tuple[str, str]]:
    """Pairs of images of different cameras showing the same frame (``<camera>/<frame>.png``)."""
    by_frame: dict[str, list[str]] = {}
    for name in sorted(names):
        by_frame.setdefault(name.split("/", 1)[1], []).append(name)
    return [pair for group in by_frame.values() for pair in combinations(group, 2)]


def _merge_into(pycolmap, database: Path, side_db: Path, side_names: dict[int, str]) -> dict[str, dict[str, int]]:
    side = pycolmap.Database.open(side_db)
    db = pycolmap.Database.open(database)
    try:
        cameras = {name.split("/")[0] for name in side_names.values()}
        main_ids = {image.name.split("/")[0]: image.image_id for image in db.read_all_images()
                    if image.name.split("/")[0] in cameras}
        offsets = _append_features(db, side, main_ids, side_names)
        added: dict[tuple[int, int], list[np.ndarray]] = {}
        for pair_id, geometry in zip(*side.read_two_view_geometries()):
            i, j = pycolmap.pair_id_to_image_pair(pair_id)
            a, b = side_names[i], side_names[j]
            matches = geometry.inlier_matches.astype(np.int64) + [offsets[a], offsets[b]]
            key = (main_ids[a.split("/")[0]], main_ids[b.split("/")[0]])
            if key[0] > key[1]:
                key, matches = key[::-1], matches[:, ::-1]
            added.setdefault(key, []).append(matches)
        stats = _rewrite_matches(pycolmap, db, added)
    finally:
        db.close()
        side.close()
    pairs_file = side_db.parent / "verify_pairs.txt"
    names = _image_names(pycolmap, database)
    pairs_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in stats))
    pycolmap.verify_matches(database, pairs_file)
    inliers = _verified(pycolmap, database)
    cameras = {image_id: name for name, image_id in main_ids.items()}
    return {"|".join(sorted((cameras[i], cameras[j]))): {**row, "verified_inliers": inliers.get((i, j), 0)}
            for (i, j), row in stats.items() if i in cameras and j in cameras}


def _append_features(db, side, main_ids: dict[str, int], side_names: dict[int, str]) -> dict[str, int]:
    """Each camera's plate keypoints and descriptors followed by its instants'; returns the instants' offsets.

    COLMAP's database cannot append to an image's features, so every image's are written again (survey
    stills' unchanged).
    """
    offsets: dict[str, int] = {}
    keypoints, descriptors, kinds = {}, {}, {}
    for image in db.read_all_images():
        found = db.read_descriptors(image.image_id)
        points, rows = [db.read_keypoints(image.image_id)], [found.data]
        kinds[image.image_id] = found.type
        if main_ids.get(image.name.split("/")[0]) == image.image_id:
            count = len(points[0])
            for side_id, name in sorted(side_names.items(), key=lambda item: item[1]):
                if name.split("/")[0] == image.name.split("/")[0]:
                    offsets[name] = count
                    points.append(side.read_keypoints(side_id)[:, :points[0].shape[1]])
                    rows.append(side.read_descriptors(side_id).data)
                    count += len(points[-1])
        keypoints[image.image_id] = np.concatenate(points).astype(np.float32)
        descriptors[image.image_id] = np.concatenate(rows)
    db.clear_keypoints()
    db.clear_descriptors()
    for image_id, points in keypoints.items():
        db.write_keypoints(image_id, points)
        db.write_descriptors(image_id, _descriptors(kinds[image_id], descriptors[image_id]))
    return offsets


def _descriptors(kind, data: np.ndarray):
    import pycolmap

    return pycolmap.FeatureDescriptors(kind, np.ascontiguousarray(data))


def _rewrite_matches(pycolmap, db, added: dict[tuple[int, int], list[np.ndarray]]) -> dict[tuple[int, int], dict]:
    """Plate matches plus the instants', per image pair; the old verification is dropped (done again)."""
    pairs, matches = db.read_all_matches()
    existing = {}
    for pair_id, found in zip(pairs, matches):
        existing[tuple(int(x) for x in pycolmap.pair_id_to_image_pair(pair_id))] = found.astype(np.int64)
    db.clear_matches()
    db.clear_two_view_geometries()
    stats = {}
    for key in sorted(set(existing) | set(added)):
        plate = existing.get(key, np.zeros((0, 2), np.int64))
        extra = np.concatenate(added[key]) if key in added else np.zeros((0, 2), np.int64)
        db.write_matches(key[0], key[1], np.concatenate([plate, extra]).astype(np.uint32))
        stats[key] = {"plate_matches": int(len(plate)), "instant_matches": int(len(extra))}
    return stats


def _verified(pycolmap, database: Path) -> dict[tuple[int, int], int]:
    db = pycolmap.Database.open(database)
    try:
        return {tuple(int(x) for x in pycolmap.pair_id_to_image_pair(pair_id)): int(len(g.inlier_matches))
                for pair_id, g in zip(*db.read_two_view_geometries())}
    finally:
        db.close()

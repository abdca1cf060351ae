"""Pictures: the contact sheet's grid and the top view's geometry."""

from __future__ import annotations

import numpy as np

from reshoot.cameras import Cameras, look_at
from reshoot.viz import contact_sheet, top_view


def test_contact_sheet_lays_out_rows_and_cells():
    red, blue = np.zeros((20, 30, 3), np.uint8), np.zeros((20, 30, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    sheet = np.asarray(contact_sheet({"a": [("t0", red), ("t1", blue)], "b": [("t0", blue), ("t1", red)]}))
    assert sheet.shape[0] > 2 * 20 and sheet.shape[1] > 2 * 30
    pure_red = (sheet[..., 0] == 255) & (sheet[..., 1] == 0) & (sheet[..., 2] == 0)
    pure_blue = (sheet[..., 2] == 255) & (sheet[..., 1] == 0) & (sheet[..., 0] == 0)
    assert pure_red.sum() == pure_blue.sum() == 2 * 20 * 30


def test_top_view_puts_cameras_where_they_are_and_points_them_inward():
    eyes = np.array([[3.0, 0.0, 1.5], [0.0, 3.0, 1.5], [-3.0, 0.0, 1.5], [0.0, -3.0, 1.5]])  # centred on 0
    poses = np.stack([look_at(e, (0, 0, 1)) for e in eyes])
    cams = Cameras.create(["e", "n", "w", "s"], [100.0] * 4, [100.0] * 4, [80.0] * 4, [45.0] * 4, poses,
                          np.tile([160, 90], (4, 1)))
    image = np.asarray(top_view(cams, size_px=400)).astype(int)
    # +X is right and +Y is up in the picture: the east camera's marker is right of centre, north's above it
    reds = np.argwhere((image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60))  # camera 0's colour
    assert reds[:, 1].mean() > 300 and abs(reds[:, 0].mean() - 200) < 40
    blues = np.argwhere((image[..., 2] > 150) & (image[..., 0] < 60) & (image[..., 1] < 140))  # camera 1's colour
    assert blues[:, 0].mean() < 100 and abs(blues[:, 1].mean() - 200) < 40
    # the wedge points inward: its fill lies between the east camera and the centre
    wedge = np.argwhere((np.abs(image - [242, 189, 190]).sum(-1) < 12))
    assert len(wedge) > 20 and 200 < wedge[:, 1].mean() < reds[:, 1].mean()

"""The editorial files read back with OpenTimelineIO: the .otio with its own adapter, the EDL with the CMX 3600
adapter (otio-cmx3600-adapter) where installed, and always line by line with OpenTimelineIO's timecode functions.

Timecodes are checked with ``opentime.from_timecode`` / ``to_timecode``, not with reshoot's own, and against
the names of a real EXR sequence written by :func:`reshoot.deliver.write_exr_sequence`.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from reshoot.editorial import write_edl, write_otio_timeline

otio = pytest.importorskip("opentimelineio", reason="OpenTimelineIO is not installed: pip install opentimelineio")
opentime = otio.opentime

#: (fps, start timecode of the footage, record start the edit expects)
RATES = [
    (Fraction(24), "00:59:59:22", "01:00:00:00"),
    (Fraction(25), "10:00:00:00", "01:00:00:00"),
    (Fraction(30000, 1001), "00:59:59;22", "01:00:00;00"),  # drop-frame
    (Fraction(30000, 1001), "00:59:59:22", "01:00:00:00"),  # non-drop at 29.97
    (Fraction(24000, 1001), "13:20:00:05", "01:00:00:00"),
    (Fraction(60000, 1001), "00:09:59;58", "01:00:00;00"),  # drop-frame across a tenth minute
]
F = 17


def _drop(timecode: str) -> bool:
    return ";" in timecode


def _expected_range(fps, start):
    rate = float(fps)
    return opentime.from_timecode(start, rate), opentime.RationalTime(F, rate)


@pytest.fixture(scope="module")
def delivery(tmp_path_factory):
    """A real 17-frame EXR sequence from 9990 (so the names cross 9999 -> 10000) and a movie file beside it."""
    from reshoot.cameras import look_at
    from reshoot.deliver import write_exr_sequence

    pytest.importorskip("OpenEXR")
    root = tmp_path_factory.mktemp("export")
    frames = [np.full((4, 6, 3), k / F, np.float32) for k in range(F)]
    poses = np.stack([look_at([3.0, -2.0, 1.5], [0.0, 0.0, 1.0])] * F)
    K = np.tile([[6.0, 0.0, 3.0], [0.0, 6.0, 2.0], [0.0, 0.0, 1.0]], (F, 1, 1))
    written = write_exr_sequence(root / "exr", frames, world_to_camera=poses, K=K, image_size=(6, 4), fps=24,
                                 first_frame=9990, name="shot")
    (root / "shot.mov").write_bytes(b"")  # only its path matters here
    return root, written


@pytest.mark.parametrize("fps, start, record", RATES, ids=[f"{r[1]}@{float(r[0]):.3f}" for r in RATES])
def test_otio_reads_back_with_timecode_rate_and_media(delivery, fps, start, record):
    root, exr_files = delivery
    path = write_otio_timeline(root / "editorial" / "shot.otio", "shot", F, fps, start_timecode=start,
                               exr_folder=root / "exr", first_frame=9990, movie=root / "shot.mov")
    timeline = otio.adapters.read_from_file(str(path))
    rate = float(fps)
    assert timeline.name == "shot"
    assert timeline.global_start_time == opentime.from_timecode(record, rate)
    (track,) = timeline.video_tracks()
    (clip,) = list(track)
    first, duration = _expected_range(fps, start)
    assert clip.source_range.start_time == first and clip.source_range.duration == duration
    assert clip.source_range.start_time.rate == rate and clip.duration().value == F
    assert opentime.to_timecode(clip.source_range.start_time, rate, drop_frame=_drop(start)) == start
    assert opentime.to_timecode(clip.source_range.end_time_inclusive(), rate, drop_frame=_drop(start)) == \
        opentime.to_timecode(first + opentime.RationalTime(F - 1, rate), rate, drop_frame=_drop(start))
    assert clip.metadata["reshoot"]["fps"] == f"{fps.numerator}/{fps.denominator}"
    assert clip.metadata["reshoot"]["start_timecode"] == start
    assert clip.metadata["reshoot"]["drop_frame"] == _drop(start)

    references = clip.media_references()
    assert set(references) == {"exr", "movie"} and clip.active_media_reference_key == "movie"
    movie, exr = references["movie"], references["exr"]
    assert (path.parent / movie.target_url).resolve() == (root / "shot.mov").resolve()
    assert movie.available_range == clip.source_range
    assert exr.number_of_images_in_sequence() == F and exr.rate == rate
    assert exr.available_range == clip.source_range
    for idx in (0, 9, F - 1):  # 9990 ... 9999, 10000 ...: the files write_exr_sequence wrote
        assert (path.parent / exr.target_url_for_image_number(idx)).resolve() == exr_files[idx].resolve()
    assert exr.frame_for_time(clip.source_range.start_time) == 9990


def test_otio_absolute_urls_only_exr_and_no_timecode(delivery):
    root, exr_files = delivery
    path = write_otio_timeline(root / "abs.otio", "shot", F, Fraction(24), exr_folder=root / "exr",
                               first_frame=9990, urls="absolute")
    clip = otio.adapters.read_from_file(str(path)).video_tracks()[0][0]
    assert list(clip.media_references()) == ["exr"] and clip.active_media_reference_key == "exr"
    assert clip.media_reference.target_url_for_image_number(0) == exr_files[0].resolve().as_uri()
    assert clip.source_range.start_time == opentime.RationalTime(0, 24)  # no footage timecode: 00:00:00:00


@pytest.mark.parametrize("fps, start, record", RATES, ids=[f"{r[1]}@{float(r[0]):.3f}" for r in RATES])
def test_edl_lines_carry_the_timecode(tmp_path, fps, start, record):
    path = write_edl(tmp_path / "shot.edl", "shot", F, fps, start_timecode=start, movie=tmp_path / "shot.mov")
    lines = path.read_text().splitlines()
    assert lines[:3] == ["TITLE: shot", f"FCM: {'DROP FRAME' if _drop(start) else 'NON-DROP FRAME'}", ""]
    event = re.fullmatch(r"001  (\S{1,8}) +V +C +(\S+) (\S+) (\S+) (\S+)", lines[3])
    assert event is not None, lines[3]
    reel, src_in, src_out, rec_in, rec_out = event.groups()
    rate = float(fps)
    first, duration = _expected_range(fps, start)
    assert reel == "shot" and src_in == start
    assert opentime.from_timecode(src_out, rate) - opentime.from_timecode(src_in, rate) == duration
    assert rec_in == record and opentime.from_timecode(rec_out, rate) - opentime.from_timecode(rec_in, rate) == duration
    assert lines[4:] == ["* FROM CLIP NAME:  shot.mov", "* FROM FILE: shot.mov"]


@pytest.mark.parametrize("fps, start, record", RATES, ids=[f"{r[1]}@{float(r[0]):.3f}" for r in RATES])
def test_edl_reads_back_with_the_cmx_3600_adapter(delivery, fps, start, record):
    if "cmx_3600" not in {a.name for a in otio.plugins.ActiveManifest().adapters}:
        pytest.skip("the CMX 3600 adapter is not installed: pip install otio-cmx3600-adapter")
    root, exr_files = delivery
    path = write_edl(root / "shot.edl", "shot_010_new_angle", F, fps, start_timecode=start,
                     exr_folder=root / "exr", first_frame=9990)
    rate = float(fps)
    timeline = otio.adapters.read_from_file(str(path), rate=rate)  # an EDL has no rate: read at the shot's
    (clip,) = list(timeline.video_tracks()[0])
    first, duration = _expected_range(fps, start)
    assert clip.source_range.start_time == first and clip.source_range.duration == duration
    assert opentime.to_timecode(clip.source_range.start_time, rate, drop_frame=_drop(start)) == start
    assert clip.name == "shot_010_new_angle.[9990-10006].exr"
    assert clip.metadata["cmx_3600"]["reel"] == "shot_010"  # cut to CMX 3600's 8 characters
    reference = clip.media_reference  # the adapter turns NAME.[first-last].exr into an image sequence
    assert reference.start_frame == 9990 and reference.number_of_images_in_sequence() == F
    assert reference.name_prefix == "shot_010_new_angle." and reference.target_url_base.rstrip("/") == "exr"
    # the adapter does not keep the record start (global_start_time stays None): checked line by line above


def test_timecodes_agree_with_the_exr_headers(delivery):
    """The EXR headers' timecode of the first frame is the .otio's and the EDL's source in."""
    OpenEXR = pytest.importorskip("OpenEXR")
    from reshoot.cameras import look_at
    from reshoot.deliver import write_exr_sequence

    root, _ = delivery
    fps, start = Fraction(30000, 1001), "00:00:59;28"
    frames = [np.zeros((4, 6, 3), np.float32)] * 3
    poses = np.stack([look_at([3.0, -2.0, 1.5], [0.0, 0.0, 1.0])] * 3)
    K = np.tile([[6.0, 0.0, 3.0], [0.0, 6.0, 2.0], [0.0, 0.0, 1.0]], (3, 1, 1))
    exr = write_exr_sequence(root / "tc", frames, world_to_camera=poses, K=K, image_size=(6, 4), fps=fps,
                             start_timecode=start, name="tc")
    with OpenEXR.File(str(exr[2])) as f:
        third = f.header()["reshoot/timecode"]
    path = write_otio_timeline(root / "tc.otio", "tc", 3, fps, start_timecode=start, exr_folder=root / "tc")
    clip = otio.adapters.read_from_file(str(path)).video_tracks()[0][0]
    assert opentime.to_timecode(clip.source_range.end_time_inclusive(), float(fps), drop_frame=True) == third
    assert third == "00:01:00;02"  # ;28, ;29, then minute 1 skips ;00 and ;01


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="exactly one of exr_folder .* and movie"):
        write_edl(tmp_path / "a.edl", "shot", F, 24, movie=tmp_path / "a.mov", exr_folder=tmp_path)
    with pytest.raises(ValueError, match="at least one of"):
        write_otio_timeline(tmp_path / "a.otio", "shot", F, 24)
    with pytest.raises(ValueError, match="drop-frame"):
        write_edl(tmp_path / "a.edl", "shot", F, 24, start_timecode="01:00:00;00", movie=tmp_path / "a.mov")
    with pytest.raises(ValueError, match="mix drop-frame"):
        write_edl(tmp_path / "a.edl", "shot", F, Fraction(30000, 1001), start_timecode="01:00:00;00",
                  record_start_timecode="01:00:00:00", movie=tmp_path / "a.mov")
    with pytest.raises(ValueError, match="reel 'toolongreel'"):
        write_edl(tmp_path / "a.edl", "shot", F, 24, reel="toolongreel", movie=tmp_path / "a.mov")
    with pytest.raises(ValueError, match=r"a\.edl.*\.otio file"):
        write_otio_timeline(tmp_path / "a.edl", "shot", F, 24, movie=tmp_path / "a.mov")
    with pytest.raises(ValueError, match="fps 29.97 is a float"):
        write_edl(tmp_path / "a.edl", "shot", F, 29.97, movie=tmp_path / "a.mov")
    with pytest.raises(ValueError, match="frame_count"):
        write_edl(tmp_path / "a.edl", "shot", 0, 24, movie=tmp_path / "a.mov")
    assert not list(tmp_path.iterdir()), "nothing written when the call fails"


def test_otio_file_is_plain_json_with_the_exact_rate(tmp_path):
    path = write_otio_timeline(tmp_path / "shot.otio", "shot", F, Fraction(24000, 1001), start_timecode="01:00:00:00",
                               movie=tmp_path / "shot.mp4")
    data = json.loads(path.read_text())
    assert data["OTIO_SCHEMA"].startswith("Timeline.")
    clip = data["tracks"]["children"][0]["children"][0]
    assert clip["metadata"]["reshoot"]["fps"] == "24000/1001"
    assert Path(clip["media_references"]["movie"]["target_url"]) == Path("shot.mp4")

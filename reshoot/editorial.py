"""Editorial deliverables: the shot as an OpenTimelineIO timeline (``.otio``) and a CMX 3600 EDL (``.edl``).

Both describe one event: the delivered shot, ``frame_count`` frames at the shot's exact ``fps``, whose
source range starts at the footage's start timecode (what the EXR headers and the movie's timecode track
carry, :mod:`reshoot.deliver`), so an editor's system lines it up with the set cameras' footage.

- **source timecode** is ``start_timecode`` (``HH:MM:SS:FF``, ``HH:MM:SS;FF`` drop-frame at 29.97/59.94);
  with none, 00:00:00:00;
- **record timecode**, where the event sits in the edit, is ``record_start_timecode``: by default
  ``01:00:00:00`` (``01:00:00;00`` drop-frame), the usual start of a sequence;
- **media**: the EXR sequence (``exr_folder/NAME.1001.exr ...``, named as
  :func:`reshoot.deliver.write_exr_sequence` names it) and the movie, by paths relative to the
  written file's folder (``urls="relative"``, so the export folder can move as a whole) or as
  absolute ``file://`` URLs (``urls="absolute"``).

The EDL is written by reshoot itself: the CMX 3600 adapter (``otio-cmx3600-adapter`` 1.0.0, OpenTimelineIO
0.18.1) writes no ``FCM`` line, always writes 29.97 fps timecode as drop-frame, and records from
00:00:00:00 whatever the timeline's start. See docs/editorial.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from reshoot._deps import require
from reshoot.atomic import atomic_write_text
from reshoot.camera_path import format_timecode
from reshoot.deliver import _timecode_start, check_file_stem
from reshoot.sync import _exact_fps

#: Where the event sits in the edit unless told: the usual start of a sequence.
RECORD_START_TIMECODE = "01:00:00:00"
_INSTALL_OTIO = "pip install 'opentimelineio>=0.18'"
_MOVIE_SUFFIXES = (".mov", ".mp4")


@dataclass(frozen=True)
class EditorialShot:
    """One delivered shot as an edit sees it, checked: frame numbers count from 00:00:00:00 at ``fps``.

    Attributes:
        name: the clip's name (the files' stem).
        frame_count: frames in the shot (>= 1).
        fps: the shot's exact frame rate.
        source_start: frame number of the first frame's source timecode.
        record_start: frame number of the first frame's record timecode.
        drop_frame: whether the timecodes are written drop-frame.
        first_frame: number of the first file of the image sequence (1001).
    """

    name: str
    frame_count: int
    fps: Fraction
    source_start: int
    record_start: int
    drop_frame: bool
    first_frame: int

    @classmethod
    def check(cls, what: str, name: str, frame_count: int, fps: Fraction | int, start_timecode: str | None,
              record_start_timecode: str | None, first_frame: int) -> EditorialShot:
        check_file_stem(name, f"{what}: name")
        if isinstance(frame_count, bool) or int(frame_count) != frame_count or frame_count < 1:
            raise ValueError(f"{what}: frame_count must be a whole number >= 1, got {frame_count!r}")
        if isinstance(first_frame, bool) or int(first_frame) != first_frame or first_frame < 0:
            raise ValueError(f"{what}: first_frame must be a whole number >= 0, got {first_frame!r}")
        rate = _exact_fps(fps, what)
        source, drop = (0, False) if start_timecode is None else _timecode_start(start_timecode, rate)
        if record_start_timecode is None:
            record_start_timecode = RECORD_START_TIMECODE[:8] + (";" if drop else ":") + RECORD_START_TIMECODE[9:]
        record, record_drop = _timecode_start(record_start_timecode, rate)
        if start_timecode is not None and record_drop != drop:
            raise ValueError(f"{what}: start_timecode {start_timecode!r} and record_start_timecode "
                             f"{record_start_timecode!r} mix drop-frame (';') and non-drop (':'); an EDL has one "
                             "frame count mode: write both the same way")
        return cls(name, int(frame_count), rate, source, record, record_drop, int(first_frame))

    def timecode(self, frame_number: int) -> str:
        """``HH:MM:SS:FF`` (``;FF`` drop-frame) of a frame number counted from 00:00:00:00."""
        return format_timecode(frame_number, self.fps, drop_frame=self.drop_frame)

    def exr_file_name(self, frame: int) -> str:
        """The name :func:`reshoot.deliver.write_exr_sequence` gives the file of frame number ``frame``."""
        return f"{self.name}.{frame:04d}.exr"

    @property
    def exr_pattern(self) -> str:
        """The sequence as editors write it: ``NAME.[1001-1050].exr``."""
        last = self.first_frame + self.frame_count - 1
        return f"{self.name}.[{self.first_frame:04d}-{last:04d}].exr"


def write_otio_timeline(
    path: Path,
    name: str,
    frame_count: int,
    fps: Fraction | int,
    *,
    start_timecode: str | None = None,
    exr_folder: Path | None = None,
    first_frame: int = 1001,
    movie: Path | None = None,
    record_start_timecode: str | None = None,
    urls: Literal["relative", "absolute"] = "relative",
) -> Path:
    """Write ``path`` (``.otio``): a timeline holding one video track with the shot as its one clip.

    - The timeline's ``global_start_time`` is the record start; the clip's ``source_range`` starts at
      ``start_timecode`` and lasts ``frame_count`` frames, at ``float(fps)`` (OpenTimelineIO's rates are
      floats: 30000/1001 is 29.97002997..., which it knows as the NTSC rate).
    - Media references, under the keys ``"exr"`` (an ``ImageSequenceReference``: ``exr_folder``,
      ``NAME.`` + frame number padded to 4 digits + ``.exr``, from ``first_frame``, step 1) and
      ``"movie"`` (an ``ExternalReference``); the movie is the active one when given. Both cover the
      clip's source range.
    - ``metadata["reshoot"]`` keeps what OpenTimelineIO has no field for: the exact fps as a fraction,
      the timecode strings and whether they are drop-frame (OpenTimelineIO counts frames, and prints
      29.97 timecode as drop-frame unless told ``drop_frame=False``).
    """
    what = "write_otio_timeline"
    path = Path(path)
    if path.suffix != ".otio":
        raise ValueError(f"{what}: {path.name}: an OpenTimelineIO timeline goes in a .otio file")
    shot = EditorialShot.check(what, name, frame_count, fps, start_timecode, record_start_timecode, first_frame)
    media = _media_urls(what, path, exr_folder, movie, urls, one=False)
    otio = require("opentimelineio", _INSTALL_OTIO)

    rate = float(shot.fps)
    source_range = otio.opentime.TimeRange(otio.opentime.RationalTime(shot.source_start, rate),
                                           otio.opentime.RationalTime(shot.frame_count, rate))
    references = {}
    if "exr" in media:
        references["exr"] = otio.schema.ImageSequenceReference(
            target_url_base=media["exr"], name_prefix=f"{shot.name}.", name_suffix=".exr",
            start_frame=shot.first_frame, frame_step=1, rate=rate, frame_zero_padding=4,
            available_range=source_range)
    if "movie" in media:
        references["movie"] = otio.schema.ExternalReference(target_url=media["movie"], available_range=source_range)
    clip = otio.schema.Clip(name=shot.name, source_range=source_range, metadata={"reshoot": _metadata(shot)})
    clip.set_media_references(references, "movie" if "movie" in references else "exr")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(clip)
    timeline = otio.schema.Timeline(name=shot.name,
                                    global_start_time=otio.opentime.RationalTime(shot.record_start, rate))
    timeline.tracks.append(track)
    atomic_write_text(path, otio.adapters.write_to_string(timeline, "otio_json") + "\n")
    return path


def write_edl(
    path: Path,
    name: str,
    frame_count: int,
    fps: Fraction | int,
    *,
    start_timecode: str | None = None,
    movie: Path | None = None,
    exr_folder: Path | None = None,
    first_frame: int = 1001,
    record_start_timecode: str | None = None,
    reel: str | None = None,
    urls: Literal["relative", "absolute"] = "relative",
) -> Path:
    """Write ``path`` (``.edl``): a CMX 3600 EDL with one video cut, the shot from ``movie`` or ``exr_folder``.

    Give exactly one of ``movie`` (the editor's usual source) and ``exr_folder`` (for a conform to
    the EXRs; the EXRs and the movie carry the same timecode)::

        TITLE: shot
        FCM: NON-DROP FRAME

        001  shot     V     C        00:59:59:22 01:00:00:15 01:00:00:00 01:00:00:17
        * FROM CLIP NAME:  shot.mov
        * FROM FILE: shot.mov

    Source in/out run from ``start_timecode`` over ``frame_count`` frames (out points exclusive, as
    CMX 3600 has them), record in/out from ``record_start_timecode``. ``FCM`` says whether the
    timecodes count drop-frame. ``reel`` defaults to ``name`` cut to CMX 3600's 8 characters
    (letters, digits, ``_``); ``FROM CLIP NAME`` is the media's file name (``NAME.[1001-1050].exr``
    for the sequence), which editing systems match against their clips. No frame rate is written
    (an EDL has none): read it back at the shot's rate.
    """
    what = "write_edl"
    path = Path(path)
    if path.suffix != ".edl":
        raise ValueError(f"{what}: {path.name}: a CMX 3600 EDL goes in a .edl file")
    shot = EditorialShot.check(what, name, frame_count, fps, start_timecode, record_start_timecode, first_frame)
    media = _media_urls(what, path, exr_folder, movie, urls, one=True)
    reel = _reel(what, shot.name if reel is None else reel, given=reel is not None)
    if "movie" in media:
        clip_name, source = Path(movie).name, media["movie"]
    else:
        clip_name, source = shot.exr_pattern, media["exr"] + shot.exr_pattern
    src_in, rec_in = shot.source_start, shot.record_start
    times = [shot.timecode(frame) for frame in (src_in, src_in + shot.frame_count,
                                                rec_in, rec_in + shot.frame_count)]
    lines = [
        f"TITLE: {shot.name}",
        f"FCM: {'DROP FRAME' if shot.drop_frame else 'NON-DROP FRAME'}",
        "",
        f"001  {reel:<8} V     C        {' '.join(times)}",
        f"* FROM CLIP NAME:  {clip_name}",
        f"* FROM FILE: {source}",
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _metadata(shot: EditorialShot) -> dict[str, Any]:
    return {"fps": f"{shot.fps.numerator}/{shot.fps.denominator}", "drop_frame": shot.drop_frame,
            "start_timecode": shot.timecode(shot.source_start),
            "record_start_timecode": shot.timecode(shot.record_start),
            "first_frame": shot.first_frame, "frame_count": shot.frame_count}


def _media_urls(what: str, path: Path, exr_folder: Path | None, movie: Path | None, urls: str,
                one: bool) -> dict[str, str]:
    """``{"exr": folder URL ending in '/', "movie": file URL}`` for those given, relative to ``path``'s folder or
    absolute ``file://``; ``one``: exactly one of them must be given, else at least one."""
    if urls not in ("relative", "absolute"):
        raise ValueError(f"{what}: urls must be 'relative' or 'absolute', got {urls!r}")
    given = {key: Path(value) for key, value in (("exr", exr_folder), ("movie", movie)) if value is not None}
    if not given or (one and len(given) > 1):
        need = "exactly one of" if one else "at least one of"
        raise ValueError(f"{what}: {path.name}: give {need} exr_folder (the EXR sequence's folder) and movie "
                         f"(the .mov or .mp4), got {sorted(given) or 'neither'}")
    if "movie" in given and given["movie"].suffix.lower() not in _MOVIE_SUFFIXES:
        raise ValueError(f"{what}: movie {given['movie']} is not a {' or '.join(_MOVIE_SUFFIXES)} file; the "
                         "EXR sequence goes in exr_folder")

    def url(target: Path) -> str:
        if urls == "absolute":
            return target.absolute().as_uri()
        return Path(os.path.relpath(target.absolute(), path.parent.absolute())).as_posix()

    return {key: url(target) + ("/" if key == "exr" else "") for key, target in given.items()}


def _reel(what: str, name: str, given: bool) -> str:
    """A CMX 3600 reel name: up to 8 letters, digits or ``_``. A name derived from the shot is cleaned and cut;
    one given is checked."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)[:8]
    if given and clean != name:
        raise ValueError(f"{what}: reel {name!r} must be 1-8 ASCII letters, digits or '_' (CMX 3600)")
    return clean or "AX"

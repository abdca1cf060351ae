"""Reading and writing video files with PyAV (FFmpeg's libraries, codecs included in its wheels), and a camera
source's audio (the sources themselves are :mod:`reshoot.footage`'s)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from reshoot._deps import require
from reshoot.footage import CameraSource, FootageError, probe_source

_AUDIO_CHUNK = 4096


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],  # each [H, W, 3] uint8
    fps: Fraction | float,
    audio: np.ndarray | None = None,  # [S] int16 mono
    sample_rate_hz: int = 48_000,
    codec: str = "libx264",
    crf: int = 16,
    timecode: str | None = None,
    *,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    rec709: bool = False,
    container_options: dict[str, str] | None = None,
) -> int:
    """Encode ``frames`` (and optional mono PCM audio) to ``path``, atomically; return the frame count.

    The container follows the suffix (``.mov``, ``.mp4``, ``.mkv``). Audio is 16-bit PCM in MOV/MKV
    (no encoder delay, so sync is sample-exact) and AAC in MP4. ``timecode`` (``HH:MM:SS:FF``, or
    ``HH:MM:SS;FF`` drop-frame) is written as the start timecode: FFmpeg's MOV/MP4 muxer turns the
    video stream's ``timecode`` metadata into a ``tmcd`` track, which PyAV and ffprobe read back.

    Args:
        frames: RGB, each uint8 (``rgb24``) or uint16 (``rgb48``, for 10-bit codecs).  # [H, W, 3]
        pix_fmt: the encoder's pixel format (``yuv420p`` for H.264, ``yuv422p10le`` for ProRes 422).
        options: encoder options; default ``{"crf": crf}`` for libx264 and none otherwise.
        rec709: convert RGB to YUV with the BT.709 matrix in limited range and tag the stream BT.709
            (primaries, transfer, matrix, range), as HD deliverables are. Off by default: FFmpeg's
            untagged default (BT.601 matrix), as reshoot's sample footage has always been written.
        container_options: muxer options, e.g. ``{"movflags": "faststart"}`` to write an MP4's or MOV's index
            before its frames, as cameras and streaming files do.
    """
    av = require("av", "pip install av")
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    try:
        with av.open(str(tmp), mode="w", options=dict(container_options or {})) as container:
            try:
                video = container.add_stream(codec, rate=rate)
            except av.codec.codec.UnknownCodecError:
                raise ValueError(f"cannot write {path.name}: the FFmpeg inside PyAV {av.__version__} has no {codec!r} "
                                 "encoder; install a PyAV wheel built with it, or leave this format out") from None
            video.pix_fmt = pix_fmt
            if options is None:
                options = {"crf": str(crf)} if codec == "libx264" else {}
            video.options = dict(options)
            if rec709:
                _tag_rec709(video.codec_context)
            if timecode:
                video.metadata["timecode"] = timecode
            sound = None
            if audio is not None:
                audio_codec = "aac" if path.suffix.lower() == ".mp4" else "pcm_s16le"
                sound = container.add_stream(audio_codec, rate=sample_rate_hz, layout="mono")
            written_samples = 0
            for frame in frames:
                if count == 0:
                    video.height, video.width = frame.shape[:2]
                rgb_format = "rgb48le" if frame.dtype == np.uint16 else "rgb24"
                packet_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=rgb_format)
                if rec709:
                    packet_frame = packet_frame.reformat(format=pix_fmt, dst_colorspace="itu709",
                                                         dst_color_range="MPEG")
                packet_frame.pts = count
                container.mux(video.encode(packet_frame))
                count += 1
                if sound is not None:  # interleave: audio up to the end of this frame
                    upto = min(len(audio), int(round(count / rate * sample_rate_hz)))
                    written_samples = _mux_audio(av, container, sound, audio, written_samples, upto)
            container.mux(video.encode(None))
            if sound is not None:
                _mux_audio(av, container, sound, audio, written_samples, len(audio))
                container.mux(sound.encode(None))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _tag_rec709(codec_context: Any) -> None:
    """Tag a video encoder BT.709: primaries, transfer, YUV matrix, and limited ("MPEG") range.

    The values are FFmpeg's ``AVCOL_PRI_BT709``, ``AVCOL_TRC_BT709``, ``AVCOL_SPC_BT709`` (all 1) and
    ``AVCOL_RANGE_MPEG`` (1).
    """
    codec_context.color_primaries = 1
    codec_context.color_trc = 1
    codec_context.colorspace = 1
    codec_context.color_range = 1


def _mux_audio(av, container, stream, audio: np.ndarray, start: int, stop: int) -> int:
    for chunk_start in range(start, stop, _AUDIO_CHUNK):
        chunk = audio[chunk_start:min(stop, chunk_start + _AUDIO_CHUNK)]
        frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = stream.rate
        frame.pts = chunk_start
        container.mux(stream.encode(frame))
    return max(start, stop)


def read_video_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode every frame of the first video stream as RGB uint8.  # each [H, W, 3]"""
    av = require("av", "pip install av")
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream, downmixed to mono float32 in [-1, 1]; returns (samples, rate)."""
    av = require("av", "pip install av")
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        chunks = []
        for frame in container.decode(stream):
            data = frame.to_ndarray()
            if data.dtype == np.int16:
                data = data.astype(np.float32) / 32768
            if frame.format.is_planar:
                chunks.append(data.mean(axis=0))
            else:
                chunks.append(data.reshape(-1, len(frame.layout.channels)).mean(axis=1))
        return np.concatenate(chunks).astype(np.float32), stream.rate


def probe_video(path: Path) -> dict[str, Any]:
    """What a camera file holds: frame count, rate, size, codec, audio and start timecode.

    A summary of :func:`reshoot.footage.probe_source`, which does the probing.
    """
    source = probe_source(Path(path))
    return {
        "path": str(source.path), "frame_count": source.frame_count, "fps": source.fps,
        "width": source.width, "height": source.height, "codec": source.codec,
        "audio_sample_rate_hz": source.audio_rate_hz, "audio_channels": source.audio_channels,
        "start_timecode": source.start_timecode,
    }


def read_source_audio(source: CameraSource) -> tuple[np.ndarray, int]:
    """The camera's audio, downmixed to mono float32; a FootageError when it has none."""
    if source.audio_rate_hz is None:
        raise FootageError(f"camera {source.camera_id!r}: {source.path} has no audio stream, so it cannot be synced "
                           "by audio; use --sync timecode, or --sync manual with --offsets CAMERA=1.5s")
    return read_audio(source.path)

"""Tests for reshoot.sync: audio offsets (synthetic and the BBC clips), timecode, manual offsets, timelines."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from reshoot.sync import (
    CameraClock,
    SyncError,
    build_timeline,
    estimate_audio_offset,
    overlap,
    parse_manual_offset,
    parse_timecode,
    sync_audio,
    timecode_offsets,
)

BBC_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bbc_audio_offset_timbl"
#: GROUND_TRUTH.txt: timbl_2 and timbl_3 are timbl_1 "truncated at" these times, so they start
#: that far into timbl_1: with timbl_1 as the reference their offsets are positive.
BBC_TRUTH_S = {"timbl_2": 12.254, "timbl_3": 12.223}
NTSC = Fraction(30000, 1001)


# ---- a synthetic world that several cameras hear ------------------------------------------------


def world_spectrum(rng: np.random.Generator, period_s: float, band_hz: float, clicks: int = 8) -> np.ndarray:
    """Fourier amplitudes (at k / period_s Hz) of a periodic, band-limited world sound.  # [K]

    Low-passed noise plus a few sharp clicks, band-limited to ``band_hz`` so that it can be sampled
    exactly at any rate above twice that and any start time.
    """
    rate_hz = 2 * int(np.ceil(band_hz))
    n = int(round(period_s * rate_hz))
    freqs = np.fft.rfftfreq(n, 1 / rate_hz)
    shaped = np.fft.rfft(rng.normal(size=n)) / np.sqrt(1 + (freqs / 800) ** 2)
    sound = np.fft.irfft(np.where(freqs <= band_hz, shaped, 0), n)
    sound /= sound.std()
    sound[rng.integers(0, n, clicks)] += 40.0
    spectrum = np.fft.rfft(sound) / n
    return np.where(freqs <= band_hz, spectrum, 0)


def record(spectrum: np.ndarray, period_s: float, start_s: float, duration_s: float, rate_hz: int) -> np.ndarray:
    """The world sampled at ``start_s + n / rate_hz`` for ``duration_s``: exact, by a phase shift.  # [S]"""
    n = int(round(period_s * rate_hz))
    k = np.arange(min(len(spectrum), n // 2 + 1))
    shifted = np.zeros(n // 2 + 1, dtype=complex)
    shifted[k] = spectrum[k] * np.exp(2j * np.pi * k * start_s / period_s) * n
    return np.fft.irfft(shifted, n)[: int(round(duration_s * rate_hz))]


def two_cameras(seed: int, offset_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Camera a at 48 kHz (DC +0.2, noise) and camera b ``offset_s`` later at 44.1 kHz (gain 0.3, DC -0.1)."""
    rng = np.random.default_rng(seed)
    spectrum = world_spectrum(rng, period_s=20.0, band_hz=7_000.0)
    a = record(spectrum, 20.0, 1.0, 8.0, 48_000) + 0.2 + rng.normal(scale=0.3, size=384_000)
    b = 0.3 * record(spectrum, 20.0, 1.0 + offset_s, 8.0, 44_100) - 0.1 + rng.normal(scale=0.1, size=352_800)
    return a, b


# ---- audio: synthetic ---------------------------------------------------------------------------


def test_offset_recovered_across_rates_gains_noise_and_dc():
    a, b = two_cameras(seed=0, offset_s=0.7318)  # 35126.4 samples at 48 kHz, 32272.38 at 44.1 kHz
    found = estimate_audio_offset(a, 48_000, b, 44_100)
    print(f"\nsynthetic 0.7318 s, 48k vs 44.1k: error {(found.offset_s - 0.7318) * 1e3:+.4f} ms, "
          f"peak ratio {found.peak_ratio:.1f}, peak {found.peak_value:.3f}")
    assert found.offset_s == pytest.approx(0.7318, abs=1e-4)  # other started later: positive
    assert found.confident and found.peak_ratio > 10
    assert 0 < found.peak_value <= 1


def test_sign_flips_with_the_roles():
    a, b = two_cameras(seed=1, offset_s=0.4137)
    found = estimate_audio_offset(b, 44_100, a, 48_000)  # the reference is now the later camera
    print(f"\nsynthetic -0.4137 s, 44.1k vs 48k: error {(found.offset_s + 0.4137) * 1e3:+.4f} ms")
    assert found.offset_s == pytest.approx(-0.4137, abs=1e-4)
    assert found.confident


def test_max_offset_limits_the_search():
    a, b = two_cameras(seed=2, offset_s=0.7318)
    assert estimate_audio_offset(a, 48_000, b, 44_100, max_offset_s=1.0).offset_s == pytest.approx(0.7318, abs=1e-4)
    elsewhere = estimate_audio_offset(a, 48_000, b, 44_100, max_offset_s=0.3)
    assert abs(elsewhere.offset_s) <= 0.3 and not elsewhere.confident


def test_camera_starting_minutes_later():
    rng = np.random.default_rng(3)
    spectrum = world_spectrum(rng, period_s=200.0, band_hz=3_500.0, clicks=20)
    # 16 and 22.05 kHz, like voice recorders: 48 kHz works the same but takes longer to make.
    a = record(spectrum, 200.0, 0.0, 180.0, 16_000) + rng.normal(scale=0.3, size=180 * 16_000)
    b = 0.5 * record(spectrum, 200.0, 127.3913, 60.0, 22_050) + rng.normal(scale=0.15, size=60 * 22_050)
    found = estimate_audio_offset(a, 16_000, b, 22_050, analysis_rate_hz=8_000)
    print(f"\nsynthetic 127.3913 s (3 min vs 1 min at 8 kHz): error {(found.offset_s - 127.3913) * 1e3:+.4f} ms, "
          f"peak ratio {found.peak_ratio:.1f}")
    assert found.offset_s == pytest.approx(127.3913, abs=1e-3)
    assert found.confident


def test_sync_audio_gives_every_camera_against_the_reference():
    a, b = two_cameras(seed=4, offset_s=0.7318)
    offsets = sync_audio({"cam_b": (b, 44_100), "cam_a": (a, 48_000)}, reference="cam_a")
    assert list(offsets) == ["cam_b", "cam_a"]
    assert offsets["cam_a"].offset_s == 0 and offsets["cam_a"].peak_ratio == np.inf and offsets["cam_a"].confident
    assert offsets["cam_b"].offset_s == pytest.approx(0.7318, abs=1e-4)


def test_integer_samples_are_accepted_and_stereo_is_refused():
    a, b = two_cameras(seed=5, offset_s=0.25)
    a16 = np.round(a / np.abs(a).max() * 20_000).astype(np.int16)
    assert estimate_audio_offset(a16, 48_000, b, 44_100).offset_s == pytest.approx(0.25, abs=1e-4)
    with pytest.raises(ValueError, match=r"mono.*\[2, 384000\].*downmix"):
        estimate_audio_offset(np.stack([a, a]), 48_000, b, 44_100)


def test_unrelated_sound_is_not_confident_and_sync_audio_names_the_camera():
    rng = np.random.default_rng(6)
    a, _ = two_cameras(seed=6, offset_s=0.5)
    stranger = rng.normal(size=200_000)
    found = estimate_audio_offset(a, 48_000, stranger, 44_100)
    assert not found.confident and found.peak_ratio < 1.5
    with pytest.raises(SyncError, match=r"'wrong_room'.*peak ratio.*same sound.*--sync timecode.*manual"):
        sync_audio({"main": (a, 48_000), "wrong_room": (stranger, 44_100)}, reference="main")


def test_silent_camera_is_named():
    a, _ = two_cameras(seed=7, offset_s=0.5)
    with pytest.raises(SyncError, match=r"camera 'mute_cam'.*no sound"):
        sync_audio({"main": (a, 48_000), "mute_cam": (np.full(48_000, 0.01), 48_000)}, reference="main")
    with pytest.raises(SyncError, match=r"'main'.*no sound"):
        sync_audio({"main": (np.zeros(1000), 48_000), "b": (a, 48_000)}, reference="main")


# ---- audio: the BBC test clips ------------------------------------------------------------------


def decode_mono(path: Path) -> tuple[np.ndarray, int]:
    """All of a file's first audio stream as mono float64, samples in decode order, and its rate."""
    av = pytest.importorskip("av")
    chunks = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            samples = frame.to_ndarray()
            channels = len(frame.layout.channels)
            if frame.format.is_planar:  # [C, S]
                chunks.append(samples.mean(axis=0))
            else:  # [1, S * C], interleaved
                chunks.append(samples.reshape(-1, channels).mean(axis=1))
        return np.concatenate(chunks).astype(np.float64), stream.rate


@pytest.mark.skipif(not BBC_DIR.is_dir(), reason=f"BBC audio-offset-finder clips not found at {BBC_DIR}")
def test_bbc_clips_match_their_ground_truth():
    signals = {name: decode_mono(BBC_DIR / f"{name}.mp3") for name in ("timbl_1", "timbl_2", "timbl_3")}
    offsets = sync_audio(signals, reference="timbl_1")
    print()
    for name, truth_s in BBC_TRUTH_S.items():
        found = offsets[name]
        print(f"BBC {name}: offset {found.offset_s:.5f} s, truth {truth_s:.3f} s, error "
              f"{(found.offset_s - truth_s) * 1e3:+.3f} ms, peak ratio {found.peak_ratio:.1f}, "
              f"peak {found.peak_value:.3f}")
        assert found.offset_s == pytest.approx(truth_s, abs=0.010)
        assert found.confident


# ---- timecode -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("timecode", "fps", "frame"), [
    ("00:00:00:00", Fraction(24), 0),
    ("01:00:00:00", Fraction(24), 86_400),
    ("00:00:01:12", Fraction(25), 37),
    ("10:20:30:24", Fraction(25), (10 * 3600 + 20 * 60 + 30) * 25 + 24),
    ("01:00:00:00", Fraction(24000, 1001), 86_400),  # nominal 24 frames a second, real 23.976
    ("00:01:00:00", NTSC, 1_800),  # non-drop at 29.97
])
def test_non_drop_timecode(timecode, fps, frame):
    assert parse_timecode(timecode, fps) == pytest.approx(float(frame / fps), abs=1e-12)


def test_23976_timecode_runs_slow_against_the_wall_clock():
    assert parse_timecode("01:00:00:00", Fraction(24000, 1001)) == pytest.approx(86_400 * 1001 / 24_000, abs=1e-9)


@pytest.mark.parametrize(("timecode", "fps", "frame"), [
    ("00:00:59;29", NTSC, 1_799),
    ("00:01:00;02", NTSC, 1_800),  # ;00 and ;01 do not exist at minute 1
    ("00:02:00;02", NTSC, 3_598),
    ("00:10:00;00", NTSC, 17_982),  # every tenth minute keeps its frames
    ("00:10:00.01", NTSC, 17_983),
    ("01:00:00,00", NTSC, 107_892),
    ("00:01:00;04", Fraction(60000, 1001), 3_600),
    ("00:10:00;00", Fraction(60000, 1001), 35_964),
])
def test_drop_frame_timecode(timecode, fps, frame):
    assert parse_timecode(timecode, fps) == pytest.approx(float(frame / fps), abs=1e-12)


def test_drop_frame_hour_is_close_to_a_real_hour():
    assert parse_timecode("01:00:00;00", NTSC) == pytest.approx(3600.0, abs=0.004)  # 3.6 ms per hour


@pytest.mark.parametrize(("timecode", "fps"), [
    ("1:00:00", Fraction(25)),
    ("aa:bb:cc:dd", Fraction(25)),
    ("00:00:00:25", Fraction(25)),  # frame 25 at 25 fps
    ("00:61:00:00", Fraction(25)),
    ("00:00:10;00", Fraction(25)),  # drop-frame at 25 fps
    ("00:01:00;01", NTSC),  # dropped frame number
    ("", Fraction(24)),
])
def test_bad_timecode_is_quoted(timecode, fps):
    with pytest.raises(ValueError, match=re.escape(repr(timecode))):
        parse_timecode(timecode, fps)


def test_float_fps_is_refused():
    with pytest.raises(ValueError, match=r"Fraction\(30000, 1001\)"):
        parse_timecode("00:00:01;00", 29.97)


def test_timecode_offsets():
    offsets = timecode_offsets({
        "a": ("01:00:00:00", Fraction(25)),
        "b": ("01:00:02:12", Fraction(25)),
        "c": ("00:59:59:00", Fraction(24)),
    }, reference="a")
    assert offsets == pytest.approx({"a": 0.0, "b": 2.48, "c": -1.0}, abs=1e-9)


def test_timecode_offsets_across_midnight():
    offsets = timecode_offsets({"a": ("23:59:59:00", Fraction(25)), "b": ("00:00:01:00", Fraction(25))}, "a")
    assert offsets["b"] == pytest.approx(2.0, abs=1e-9)


def test_timecode_offsets_name_the_camera_without_timecode():
    with pytest.raises(SyncError, match=r"camera 'phone'.*no start timecode.*--sync audio"):
        timecode_offsets({"a": ("01:00:00:00", Fraction(25)), "phone": None}, reference="a")
    with pytest.raises(SyncError, match=r"camera 'b'.*'01:00:00:99'"):
        timecode_offsets({"a": ("01:00:00:00", Fraction(25)), "b": ("01:00:00:99", Fraction(25))}, reference="a")


# ---- manual offsets -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "fps", "seconds"), [
    ("1.5s", Fraction(25), 1.5),
    ("1.5", Fraction(25), 1.5),
    ("-0.25s", Fraction(25), -0.25),
    ("+2S", Fraction(25), 2.0),
    (" .5 s ", Fraction(25), 0.5),
    ("36f", Fraction(24), 1.5),
    ("-12f", Fraction(24), -0.5),
    ("30f", NTSC, 1.001),
    ("0f", NTSC, 0.0),
])
def test_manual_offsets(text, fps, seconds):
    assert parse_manual_offset(text, fps) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize("text", ["", "abc", "1.5ms", "1.5 frames", "s", "1.5f", "1..5", "--1"])
def test_bad_manual_offset_quotes_the_text_and_the_forms(text):
    with pytest.raises(ValueError, match=rf"{repr(text)}.*'36f'"):
        parse_manual_offset(text, Fraction(25))


# ---- clocks and timelines -----------------------------------------------------------------------


def three_clocks() -> list[CameraClock]:
    return [
        CameraClock.constant_rate("cam_a", 0.0, 240, Fraction(24)),  # [0, 10)
        CameraClock.constant_rate("cam_b", 1.25, 300, NTSC),  # [1.25, 11.26)
        CameraClock.constant_rate("cam_c", -0.5, 200, Fraction(25)),  # [-0.5, 7.5)
    ]


def brute_force(clock: CameraClock, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest frame by argmin (first = earlier on ties) and the weight of the frame after, per time."""
    frames = clock.start_s + clock.frame_times_s
    nearest, weight = [], []
    for t in times_s:
        if not clock.start_s <= t < clock.end_s:
            nearest.append(-1)
            weight.append(0.0)
            continue
        nearest.append(int(np.argmin(np.abs(frames - t))))
        k = int(np.flatnonzero(frames <= t + 1e-9)[-1])  # within 1 ns of a frame is on it
        on_frame = k == len(frames) - 1 or t - frames[k] <= 1e-9
        weight.append(0.0 if on_frame else (t - frames[k]) / (frames[k + 1] - frames[k]))
    return np.array(nearest), np.array(weight)


def test_overlap_and_default_range():
    clocks = three_clocks()
    assert clocks[1].end_s == pytest.approx(1.25 + 300 * 1001 / 30_000)
    assert overlap(clocks) == pytest.approx((1.25, 7.5))
    timeline = build_timeline(clocks, Fraction(24))
    assert timeline.overlap_s == pytest.approx((1.25, 7.5))
    assert len(timeline) == 150  # 1.25 + i / 24 < 7.5
    np.testing.assert_allclose(timeline.times_s, 1.25 + np.arange(150) / 24, atol=1e-12)


def test_times_are_half_open_and_step_skips():
    clocks = three_clocks()
    assert len(build_timeline(clocks, Fraction(24), start_s=2.0, end_s=2.0 + 10 / 24)) == 10
    stepped = build_timeline(clocks, Fraction(24), start_s=2.0, end_s=3.0, step=5)
    np.testing.assert_allclose(stepped.times_s, 2.0 + np.arange(5) * 5 / 24, atol=1e-12)


def test_nearest_frames_and_weights_match_brute_force():
    clocks = three_clocks()
    timeline = build_timeline(clocks, Fraction(60))
    for clock in clocks:
        nearest, weight = brute_force(clock, timeline.times_s)
        np.testing.assert_array_equal(timeline.source_frames[clock.camera_id], nearest)
        np.testing.assert_allclose(timeline.next_weight[clock.camera_id], weight, atol=1e-9)
        assert (timeline.next_weight[clock.camera_id] < 1).all()


def test_same_rate_is_exact():
    clock = CameraClock.constant_rate("a", 0.0, 240, Fraction(24))
    timeline = build_timeline([clock], Fraction(24))
    np.testing.assert_array_equal(timeline.source_frames["a"], np.arange(240))
    np.testing.assert_array_equal(timeline.next_weight["a"], np.zeros(240))


def test_blend_frames_interpolate_time():
    clocks = three_clocks()
    timeline = build_timeline(clocks, Fraction(24))
    clock = clocks[1]
    k, k_next, w = timeline.blend_frames("cam_b")
    frames = clock.start_s + clock.frame_times_s
    np.testing.assert_allclose((1 - w) * frames[k] + w * frames[k_next], timeline.times_s, atol=1e-9)
    assert ((k_next == k) | (k_next == k + 1)).all()


def test_variable_frame_rate_maps_by_time():
    rng = np.random.default_rng(8)
    frame_times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.02, 0.06, size=199))])
    vfr = CameraClock("phone", 0.3, frame_times, Fraction(30))
    steady = CameraClock.constant_rate("cam_a", 0.0, 240, Fraction(24))
    timeline = build_timeline([steady, vfr], Fraction(25))
    assert timeline.overlap_s == pytest.approx((0.3, 0.3 + frame_times[-1] + 1 / 30))
    nearest, weight = brute_force(vfr, timeline.times_s)
    np.testing.assert_array_equal(timeline.source_frames["phone"], nearest)
    np.testing.assert_allclose(timeline.next_weight["phone"], weight, atol=1e-9)


def test_no_overlap_lists_every_span():
    clocks = [CameraClock.constant_rate("early", 0.0, 240, Fraction(24)),
              CameraClock.constant_rate("late", 20.0, 100, Fraction(25))]
    with pytest.raises(SyncError, match=r"'early' \[0\.000, 10\.000\) s, 'late' \[20\.000, 24\.000\) s"):
        overlap(clocks)
    with pytest.raises(SyncError, match="never all have footage"):
        build_timeline(clocks, Fraction(24))


def test_range_outside_the_overlap_names_the_camera():
    with pytest.raises(SyncError, match=r"camera 'cam_b'.*\[1\.250, 7\.500\)") as info:
        build_timeline(three_clocks(), Fraction(24), start_s=0.0, end_s=5.0)
    assert "'cam_a'" not in str(info.value) and "'cam_c'" not in str(info.value)
    with pytest.raises(SyncError, match=r"camera 'cam_c'.*--no-require-overlap"):
        build_timeline(three_clocks(), Fraction(24), start_s=5.0, end_s=9.0)


def test_without_require_overlap_missing_frames_are_minus_one():
    timeline = build_timeline(three_clocks(), Fraction(24), start_s=0.0, end_s=9.0, require_overlap=False)
    times = timeline.times_s
    np.testing.assert_array_equal(timeline.source_frames["cam_b"] == -1, times < 1.25)
    np.testing.assert_array_equal(timeline.source_frames["cam_c"] == -1, times >= 7.5)
    assert (timeline.source_frames["cam_a"] >= 0).all()
    assert (timeline.next_weight["cam_b"][times < 1.25] == 0).all()


def test_clock_checks_its_frame_times():
    with pytest.raises(ValueError, match=r"'x'.*start at 0"):
        CameraClock("x", 0.0, np.array([0.1, 0.2]), Fraction(24))
    with pytest.raises(ValueError, match=r"'x'.*frame 2 .* is not after frame 1"):
        CameraClock("x", 0.0, np.array([0.0, 0.1, 0.1]), Fraction(24))


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001), Fraction(24000, 1001), Fraction(24)])
def test_default_range_never_runs_past_the_overlap(fps):
    """Rounding in start + k / fps must not add an output time at the overlap's end (any clip length)."""
    for frames in range(2, 300):
        clock = CameraClock.constant_rate("a", 0.0, frames, fps)
        timeline = build_timeline([clock], fps)
        assert len(timeline.times_s) == frames, (fps, frames)
        np.testing.assert_array_equal(timeline.source_frames["a"], np.arange(frames))

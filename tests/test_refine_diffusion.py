"""The diffusion refiners (reshoot.refine.diffusion, .loading, .windows) on tiny random pipelines, offline.

The pipelines (tests/tiny_pipelines.py) are saved with save_pretrained into a temporary folder once per module and
loaded back through load_pipeline, so every test also exercises the save/load round trip. They are untrained: the
tests check plumbing and guarantees (the guide reaches the model, kept pixels stay exact, windows join, sizes come
back), not looks. Each run takes well under a second on one CPU thread.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from reshoot.refine.base import RefineInputs  # noqa: E402
from reshoot.refine.diffusion import (  # noqa: E402
    DIFFUSION_REFINERS,
    DiffusionConfig,
    KeepLatents,
    LtxRefiner,
    RefinerError,
    VideoToVideoRefiner,
    WanVaceRefiner,
    latent_keep_mask,
    load_pipeline,
)
from reshoot.refine.windows import (  # noqa: E402
    FrameRule,
    Window,
    blend_windows,
    crossfade_weights,
    plan_windows,
    processing_size,
    resize_frames,
    window_seed,
)
from tiny_pipelines import build_tiny_pipeline, save_tiny_pipeline  # noqa: E402

#: Fast settings: 2 steps, no classifier-free guidance (one transformer pass a step).
FAST = DiffusionConfig(device="cpu", steps=2, guidance_scale=1.0, strength=0.7)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """On small CPUs torch's multi-threaded conv3d on tiny tensors is ~30x slower than one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Each tiny pipeline saved once: refiner kind -> folder."""
    root = tmp_path_factory.mktemp("tiny_pipelines")
    return {kind: save_tiny_pipeline(kind, root / kind) for kind in ("wan-vace", "ltx", "v2v", "v2v-cogvideox")}


@pytest.fixture(scope="module")
def pipes(folders):
    """Each tiny pipeline loaded back through load_pipeline (the save/load round trip)."""
    return {kind: load_pipeline(kind.removesuffix("-cogvideox"), DiffusionConfig(model=str(folder), device="cpu"))
            for kind, folder in folders.items()}


def refiner(pipes, kind: str, **settings):
    cls = DIFFUSION_REFINERS[kind.removesuffix("-cogvideox")]
    return cls.from_pipeline(pipes[kind], DiffusionConfig(**{**vars(FAST), **settings}))


def moving_guide(frames: int, height: int = 32, width: int = 32, phase: float = 0.0) -> np.ndarray:
    """Smooth colour waves drifting a little each frame.  # [F, H, W, 3] float32 in [0.1, 0.9]"""
    yy, xx = np.mgrid[0:height, 0:width] / 32.0
    shot = [np.stack([np.sin(3 * xx + 0.2 * t + phase), np.cos(4 * yy - 0.1 * t + phase),
                      np.sin(2 * (xx + yy) + phase)], axis=-1) * 0.4 + 0.5 for t in range(frames)]
    return np.stack(shot).astype(np.float32)


def make_inputs(guide: np.ndarray, confidence: np.ndarray | float = 0.0, **extra) -> RefineInputs:
    shape = guide.shape[:3]
    return RefineInputs(guide=guide, confidence=np.broadcast_to(np.float32(confidence), shape).copy(),
                        alpha=np.ones(shape, np.float32), **extra)


# --- windows.py -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor,latent_multiple,first_valid", [(4, 1, [1, 5, 9]), (8, 1, [1, 9, 17]),
                                                                   (4, 2, [5, 13, 21])])
def test_frame_rule_rounds_to_valid_counts(factor, latent_multiple, first_valid):
    rule = FrameRule(factor, latent_multiple)
    valid = [n for n in range(1, 200) if rule.is_valid(n)]
    assert valid[:3] == first_valid
    for n in range(1, 150):
        assert rule.at_least(n) == min(v for v in valid if v >= n)
        below = [v for v in valid if v <= n]
        assert rule.at_most(n) == (max(below) if below else valid[0])
    assert FrameRule(4).at_most(81) == 81 and FrameRule(8).at_most(81) == 81 and FrameRule(8).at_most(100) == 97


@pytest.mark.parametrize("frame_count,window,overlap,factor", [
    (1, 81, 12, 4), (5, 81, 12, 4), (81, 81, 12, 4), (82, 81, 12, 4), (200, 81, 12, 4), (200, 50, 10, 8),
    (17, 9, 3, 4), (1000, 33, 0, 4), (64, 17, 8, 8),
])
def test_plan_windows_covers_every_frame_with_valid_overlapping_windows(frame_count, window, overlap, factor):
    rule = FrameRule(factor)
    windows = plan_windows(frame_count, window, overlap, rule)
    assert windows[0].start == 0 and windows[-1].end == frame_count
    assert all(rule.is_valid(w.length) and w.length >= w.frame_count for w in windows)
    assert all(w.length <= max(window, rule.at_least(frame_count if frame_count < window else 2)) for w in windows)
    for a, b in zip(windows, windows[1:]):
        assert a.start < b.start and a.end - b.start >= overlap  # neighbours share at least `overlap` frames
    overlaps = [a.end - b.start for a, b in zip(windows, windows[1:])]
    assert not overlaps or max(overlaps) - min(overlaps) <= 1  # spread evenly
    if len(windows) > 1:  # and no window could be dropped
        assert len(plan_windows(frame_count, window, overlap, rule)) == -(-(frame_count - overlap)
                                                                           // (windows[0].length - overlap))


def test_short_shot_gets_one_padded_window():
    (window,) = plan_windows(6, 81, 12, FrameRule(4))
    assert (window.start, window.end, window.length, window.padding) == (0, 6, 9, 3)
    frames = np.arange(6, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(window.take(frames)[:, 0], [0, 1, 2, 3, 4, 5, 5, 5, 5])


def test_plan_windows_rejects_bad_overlap():
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 9\).*got 9"):
        plan_windows(30, 9, 9, FrameRule(4))


@pytest.mark.parametrize("frame_count,window,overlap",
                         [(200, 81, 12), (30, 9, 4), (30, 9, 3), (100, 17, 12), (9, 9, 2)])
def test_crossfade_weights_sum_to_one_and_ramp_linearly(frame_count, window, overlap):
    windows = plan_windows(frame_count, window, overlap, FrameRule(4))
    weights = crossfade_weights(windows, frame_count)
    np.testing.assert_allclose(weights.sum(axis=0), 1.0, atol=1e-12)
    assert (weights >= 0).all()
    for i, w in enumerate(windows):  # zero outside the window
        assert (weights[i, :w.start] == 0).all() and (weights[i, w.end:] == 0).all()
    if all(c.start >= a.end for a, c in zip(windows, windows[2:])):  # no frame in three windows: exact linear ramps
        for i, (a, b) in enumerate(zip(windows, windows[1:])):
            n = a.end - b.start
            np.testing.assert_allclose(weights[i + 1, b.start:a.end], np.arange(1, n + 1) / (n + 1), atol=1e-12)


def test_blend_windows_reproduces_a_shot_the_windows_agree_on():
    shot = np.random.default_rng(0).random((40, 4, 5, 3)).astype(np.float32)
    windows = plan_windows(40, 13, 5, FrameRule(4))
    clips = [shot[w.start:w.end] for w in windows]
    np.testing.assert_allclose(blend_windows(clips, windows, 40), shot, atol=1e-6)


def test_window_seeds_are_fixed_and_distinct():
    assert window_seed(0, 0) == window_seed(0, 0)
    assert len({window_seed(seed, idx) for seed in range(3) for idx in range(50)}) == 150


@pytest.mark.parametrize("size,multiple,max_side,expected", [
    ((70, 38), 16, 832, (64, 32)), ((70, 38), 32, 832, (64, 32)), ((1920, 1080), 16, 832, (832, 464)),
    ((96, 64), 16, 48, (48, 32)), ((8, 8), 16, None, (16, 16)), ((640, 360), 32, None, (640, 352)),
])
def test_processing_size(size, multiple, max_side, expected):
    assert processing_size(size, multiple, max_side) == expected


def test_resize_frames_round_trips_size_and_keeps_constant_frames():
    frames = np.full((3, 38, 70, 3), 0.25, np.float32)
    small = resize_frames(frames, (64, 32))
    assert small.shape == (3, 32, 64, 3)
    back = resize_frames(small, (70, 38))
    assert back.shape == (3, 38, 70, 3)
    np.testing.assert_allclose(back, 0.25, atol=1e-6)
    assert resize_frames(np.zeros((2, 5, 6), np.float32), (3, 4)).shape == (2, 4, 3)


# --- (a) the guide conditions the output; same guide and seed, same output ------------------------------------------


@pytest.mark.parametrize("kind", ["ltx", "v2v", "v2v-cogvideox"])
def test_guide_conditions_the_output(pipes, kind):
    """Another guide, another shot; the same guide and seed, the same shot to the bit.

    A random decoder does not carry the guide's pattern over (the outputs' difference does not correlate with the
    guides'), so "differ substantially" is measured against what ignoring the guide gives: exactly 0 (see the v2v
    strength-1.0 control below). 0.01 is 2.5 grey levels of 255 on average; the tiny models give 0.02 to 0.08.
    """
    refine = refiner(pipes, kind).refine
    a = refine(make_inputs(moving_guide(9))).frames
    b = refine(make_inputs(moving_guide(9, phase=2.0))).frames
    again = refine(make_inputs(moving_guide(9))).frames
    assert a.shape == (9, 32, 32, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, again)
    assert np.abs(a - b).mean() > 0.01
    other_seed = refiner(pipes, kind, seed=1).refine(make_inputs(moving_guide(9))).frames
    assert not np.array_equal(a, other_seed)


def test_v2v_at_full_strength_ignores_the_guide(pipes):
    """The control for the test above: strength 1.0 starts Wan's flow from pure noise, so the guide drops out."""
    refine = refiner(pipes, "v2v", strength=1.0).refine
    a = refine(make_inputs(moving_guide(9))).frames
    b = refine(make_inputs(moving_guide(9, phase=2.0))).frames
    assert np.abs(a - b).max() < 1e-6


def test_wan_vace_same_guide_and_seed_give_the_same_shot(pipes):
    inputs = make_inputs(moving_guide(9), confidence=half_confident(9))
    a = refiner(pipes, "wan-vace").refine(inputs).frames
    np.testing.assert_array_equal(a, refiner(pipes, "wan-vace").refine(inputs).frames)


def test_loading_from_folder_matches_the_built_pipeline(folders, pipes):
    inputs = make_inputs(moving_guide(9))
    loaded = VideoToVideoRefiner(DiffusionConfig(**{**vars(FAST), "model": str(folders["v2v"])}))
    built = VideoToVideoRefiner.from_pipeline(build_tiny_pipeline("v2v"), FAST)
    # Not bit-identical: from_pretrained's loading path rounds a few operations differently (~5e-7).
    np.testing.assert_allclose(loaded.refine(inputs).frames, built.refine(inputs).frames, atol=1e-5)
    assert loaded.pipeline.transformer.dtype == torch.float32 and str(loaded.pipeline.device) == "cpu"


# --- (b) wan-vace keeps confident pixels and the start / end frames --------------------------------------------------


def half_confident(frames: int, height: int = 32, width: int = 32) -> np.ndarray:
    """Confidence 1 on the left half, 0 on the right, a ramp through the threshold between."""
    ramp = np.clip((width / 2 + 4 - np.arange(width)) / 8, 0, 1)
    return np.broadcast_to(ramp, (frames, height, width)).astype(np.float32).copy()


def test_wan_vace_keeps_confident_pixels_exactly_and_generates_the_rest(pipes):
    guide, confidence = moving_guide(9), half_confident(9)
    result = refiner(pipes, "wan-vace", confidence_threshold=0.5, confidence_feather=0.1).refine(
        make_inputs(guide, confidence))
    kept = confidence >= 0.5 + 0.1
    generated = confidence < 0.5
    assert np.abs(result.frames - guide)[kept].max() <= 1e-6
    assert np.abs(result.frames - guide)[generated].mean() > 0.05  # the model's pixels, not the guide's
    record = result.record
    assert record["kept_exactly_fraction"] == pytest.approx(kept.mean(), abs=1e-3)
    assert record["generated_fraction"] == pytest.approx((confidence < 0.6).mean(), abs=1e-3)


def test_wan_vace_honours_start_and_end_frames_and_references(pipes):
    guide = moving_guide(9)
    start, end = np.full((32, 32, 3), 0.2, np.float32), np.full((32, 32, 3), 0.8, np.float32)
    references = {"cam2": moving_guide(9, 24, 40, phase=1.0), "cam0": moving_guide(9, 24, 40, phase=3.0)}
    inputs = make_inputs(guide, 0.0, start_frame=start, end_frame=end, references=references)
    result = refiner(pipes, "wan-vace", reference_count=1).refine(inputs)
    np.testing.assert_allclose(result.frames[0], start, atol=1e-6)
    np.testing.assert_allclose(result.frames[-1], end, atol=1e-6)
    assert result.record["reference_cameras"] == ["cam2"]
    without = refiner(pipes, "wan-vace", reference_count=1).refine(make_inputs(guide, 0.0, references=references)).frames
    assert np.abs(result.frames[1:-1] - without[1:-1]).mean() > 1e-4  # the keyframes reach the model too


def test_keep_latents_lands_kept_latents_on_the_guide(pipes):
    """FACTS: WanVACE does not keep mask=0 regions by itself; the callback makes the final latents exact there."""
    refine = refiner(pipes, "wan-vace")
    pipe = pipes["wan-vace"]
    inputs = make_inputs(moving_guide(9), half_confident(9))
    target, weight = refine.target_and_weight(inputs)
    clip = refine.window_clip(inputs, target, weight, Window(0, 9, 9), (32, 32), seed=3)
    keep = KeepLatents(pipe, clip, num_references=0)
    assert keep.keep.any() and not keep.keep.all()
    video = torch.from_numpy(clip.target).permute(0, 3, 1, 2)[None]
    mask = torch.from_numpy(np.repeat(clip.generate[..., None], 3, -1)).permute(0, 3, 1, 2)[None]
    common = dict(video=video, mask=mask, prompt="", height=32, width=32, num_frames=9, num_inference_steps=2,
                  guidance_scale=1.0, output_type="latent")
    with torch.inference_mode():
        held = pipe(**common, generator=torch.Generator().manual_seed(0), callback_on_step_end=keep).frames
        free = pipe(**common, generator=torch.Generator().manual_seed(0)).frames
    where = keep.keep.expand_as(held[0])
    assert torch.equal(held[0][where], keep.target[0][where])
    assert (free[0][where] - keep.target[0][where]).abs().mean() > 0.1  # without it they drift away
    assert not torch.equal(held, free)


def test_latent_keep_mask_follows_the_causal_vae_grouping():
    keep = torch.ones(9, 16, 16, dtype=torch.bool)
    keep[5, 0, 0] = False  # frame 5 is in latent frame 2 (frames 5..8), cell (0, 0)
    cells = latent_keep_mask(keep, temporal=4, spatial=8)
    assert cells.shape == (3, 2, 2)
    assert not cells[2, 0, 0] and cells.sum() == 3 * 4 - 1


# --- (c) windows join without seams ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,window,overlap", [("v2v", 13, 5), ("wan-vace", 13, 5), ("ltx", 17, 8)])
def test_windows_join_without_seams(pipes, kind, window, overlap):
    """Across a seam the frame-to-frame change stays within what the windows themselves show.

    A linear cross-fade of clips A and B over n frames changes a frame by
    ``(1 - w) * dA + w * dB + (w' - w) * (B - A)``: a mix of the clips' own steps plus ``1 / (n + 1)`` of their
    disagreement. So a seam step is at most the largest step inside the windows plus max|B - A| / (n + 1): that
    is the tolerance. A hard cut would add all of |B - A| at once.
    """
    frames = 21 if kind != "ltx" else 25
    inputs = make_inputs(moving_guide(frames))
    refine = refiner(pipes, kind, window=window, overlap=overlap)
    progress = []
    result = refine.refine(inputs, progress=lambda done, total: progress.append((done, total)))
    windows = [Window(start, end, length) for (start, end), length in
               zip(result.record["windows"], result.record["window_lengths"])]
    assert len(windows) == 2 and progress == [(1, 2), (2, 2)]
    # The two windows' own frames, through the same code path and seeds as inside refine().
    target, weight = refine.target_and_weight(inputs)
    clip_a, clip_b = (refine.run_window(refine.pipeline, refine.window_clip(inputs, target, weight, w, (32, 32),
                                                                           result.record["seeds"][i]))[:w.frame_count]
                      for i, w in enumerate(windows))
    a, b = windows
    n = a.end - b.start
    disagreement = np.abs(clip_a[b.start - a.start:] - clip_b[:n]).mean(axis=(1, 2, 3)).max()
    steps = np.abs(np.diff(result.frames, axis=0)).mean(axis=(1, 2, 3))
    seam = steps[b.start - 1:a.end].max()  # every step that touches a cross-faded frame
    within = np.concatenate([steps[:b.start - 1], steps[a.end:]]).max()
    assert seam <= within + disagreement / (n + 1) + 1e-6, (seam, within, disagreement, n)


# --- (d) sizes ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,expected", [("v2v", [64, 32]), ("ltx", [64, 32]), ("wan-vace", [64, 32])])
def test_odd_guide_size_is_restored(pipes, kind, expected):
    guide = moving_guide(9, height=38, width=70)
    confidence = half_confident(9, 38, 70)
    result = refiner(pipes, kind).refine(make_inputs(guide, confidence))
    assert result.frames.shape == (9, 38, 70, 3)
    assert result.record["processing_size"] == expected and result.record["guide_size"] == [70, 38]
    if kind == "wan-vace":  # the composite happens at the guide's size: kept pixels stay exact through the resize
        assert np.abs(result.frames - guide)[confidence >= 0.6].max() <= 1e-6


def test_record_is_json_and_complete(pipes):
    result = refiner(pipes, "v2v", window=9, overlap=2).refine(make_inputs(moving_guide(13)))
    record = json.loads(json.dumps(result.record))
    assert record["refiner"] == "v2v" and record["pipeline_class"] == "WanVideoToVideoPipeline"
    assert record["dtype"] == "float32" and record["device"] == "cpu" and record["steps"] == 2
    assert record["windows"] == [[0, 9], [4, 13]] and len(record["seeds"]) == len(record["seconds_per_window"]) == 2
    assert record["frame_rule"] == "k*4+1" and record["config"]["strength"] == 0.7


# --- (e) errors -----------------------------------------------------------------------------------------------------


def test_missing_folder_says_how_to_download(tmp_path):
    with pytest.raises(RefinerError, match=r"does not exist.*hf download Wan-AI/Wan2.1-VACE-1.3B"):
        load_pipeline("wan-vace", DiffusionConfig(model=str(tmp_path / "nowhere"), device="cpu"))


def test_folder_without_model_index_is_refused(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(RefinerError, match=r"has no model_index.json.*not a diffusers pipeline folder"):
        load_pipeline("ltx", DiffusionConfig(model=str(tmp_path), device="cpu"))


def test_wrong_pipeline_type_names_the_refiner_that_takes_it(folders):
    with pytest.raises(RefinerError, match=r"holds a WanVideoToVideoPipeline.*takes WanVACEPipeline.*'v2v' refiner"):
        WanVaceRefiner(DiffusionConfig(model=str(folders["v2v"]), device="cpu")).pipeline
    with pytest.raises(RefinerError, match=r"holds a WanVACEPipeline.*'wan-vace' refiner"):
        load_pipeline("ltx", DiffusionConfig(model=str(folders["wan-vace"]), device="cpu"))


def test_from_pipeline_refuses_the_wrong_pipeline(pipes):
    with pytest.raises(RefinerError, match=r"got a LTXConditionPipeline.*'ltx' refiner"):
        VideoToVideoRefiner.from_pipeline(pipes["ltx"], FAST)


def test_unreachable_hub_says_to_download_elsewhere(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RefinerError, match=r"hub id.*cannot be reached.*hf download "
                                           r"no-such-owner/no-such-model --local-dir FOLDER"):
        load_pipeline("v2v", DiffusionConfig(model="no-such-owner/no-such-model", device="cpu"))


def test_missing_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from reshoot.refine.loading import resolve_device_dtype

    with pytest.raises(RefinerError, match=r"device='cuda'.*sees no CUDA device"):
        resolve_device_dtype(DiffusionConfig(device="cuda"))
    assert resolve_device_dtype(DiffusionConfig()) == ("cpu", torch.float32)


@pytest.mark.parametrize("field,value,message", [
    ("strength", 0.0, r"strength: expected in \(0, 1\], got 0.0"),
    ("overlap", 81, r"overlap: expected in \[0, window=81\), got 81"),
    ("dtype", "fp8", r"dtype: expected .*got 'fp8'"),
    ("device", "tpu", r"device: expected .*got 'tpu'"),
])
def test_config_quotes_bad_values(field, value, message):
    with pytest.raises(RefinerError, match=message):
        DiffusionConfig(**{field: value})


def test_v2v_without_a_denoising_step_is_refused(pipes):
    with pytest.raises(RefinerError, match=r"steps=2 x strength=0.3 leaves no denoising step"):
        refiner(pipes, "v2v", strength=0.3).refine(make_inputs(moving_guide(5)))


# --- (f) ltx keyframes ----------------------------------------------------------------------------------------------


def test_ltx_keeps_start_and_end_keyframes(pipes):
    guide = moving_guide(9)
    start, end = np.full((32, 32, 3), 0.15, np.float32), np.full((32, 32, 3), 0.85, np.float32)
    result = refiner(pipes, "ltx").refine(make_inputs(guide, start_frame=start, end_frame=end))
    np.testing.assert_allclose(result.frames[0], start, atol=1e-6)
    np.testing.assert_allclose(result.frames[-1], end, atol=1e-6)
    assert result.record["start_frame_kept"] and result.record["end_frame_kept"]
    # The keyframes went to the model as conditions (strength 1.0), so the frames between change too.
    without = refiner(pipes, "ltx").refine(make_inputs(guide)).frames
    assert np.abs(result.frames[1:-1] - without[1:-1]).mean() > 1e-3


def test_registry_names():
    assert set(DIFFUSION_REFINERS) == {"wan-vace", "ltx", "v2v"}
    assert {name: cls.name for name, cls in DIFFUSION_REFINERS.items()} == {n: n for n in DIFFUSION_REFINERS}
    assert DIFFUSION_REFINERS["ltx"] is LtxRefiner

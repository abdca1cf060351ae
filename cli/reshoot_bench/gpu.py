"""The GPU check, ``reshoot bench gpu``: what reshoot's CUDA paths do on the machine at hand, in one table.

Rows, in order (each says what it measured; on a machine without CUDA every GPU row says "not run: needs CUDA"):

1. **device**: torch and its CUDA build, the card (name, memory, compute capability), gsplat, CUDA_HOME (nvcc's).
2. **gsplat kernels**: seconds of the first ``gsplat.rasterization`` call on CUDA tensors (it JIT-compiles gsplat's
   kernels when no build is cached; else it loads the cached build).
3. **CPU rasterizer vs gsplat**, one row per mode (RGB, SH degree 3, RGB+ED as training renders, packed and not,
   antialiased): the same scene through :func:`reshoot.splat.rasterize.rasterize_cpu` (reshoot's compiled CPU kernels)
   and ``gsplat.rasterization`` on CUDA; colours, alphas and the gradients of means, quats, scales, opacities and
   colours compared (tolerances of tests/test_rasterize.py's ``gpu`` test: values 2e-4, gradients 2e-3 of the largest).
4. **training the default sample**: the sample made, ingested (timecode) and registered (with its survey) as
   ``reshoot bench reconstruct`` does; then ``steps`` training steps on the CPU (strategy ``default``), on CUDA with
   ``--strategy auto`` (``mcmc``) and on CUDA with the CPU's strategy; each timed and scored on the overhead camera
   nobody filmed (whole frame, set, actor).
5. **refine model at a real size**: a randomly initialised ``WanVACETransformer3DModel`` of Wan2.1-VACE-1.3B's
   configuration (:data:`WAN_VACE_1_3B`) in bfloat16 on CUDA, timed over a few denoising steps of reshoot's default
   window (81 frames at 832x480, 2 reference images, classifier-free guidance: two forward passes a step), with its
   peak GPU memory. The transformer alone: no VAE, no text encoder (random latents and text embeddings of the real
   shapes). Without CUDA a tiny configuration runs the same code on the CPU instead (a row of its own).

Budget: about 8 minutes on one H100-class GPU with 16 CPU cores, an estimate (no CUDA machine has run it yet): gsplat's
build 2-5 minutes; the rest is bounded by ``steps`` (300) and ``refine_steps`` (3). On a shared 2-core machine
without CUDA it took 159-170 s (three runs, 2026-12-06): the sample and its registration 32-33 s; the CPU training
stage 118-129 s, of which 60-64 s training, the rest mostly the dense set and the initial Gaussians, CPU work that
each GPU run repeats (on 16 cores, less).

A part that fails gives a row saying so (``pass`` False) and its traceback in ``WORK/bench-gpu-errors.txt``; the
other parts still run, so one borrowed GPU session gives the whole table.
"""

from __future__ import annotations

import datetime
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from reshoot.progress import progress_enabled

STEPS = 300  #: training steps of each run (the fast preset's schedule scaled to them)
REFINE_SIZE = (832, 480)  #: (width, height) of the refine timing: Wan 2.1's 480p
REFINE_FRAMES = 81  #: frames of the timed window: DiffusionConfig.window's default (k * 4 + 1)
REFINE_REFERENCES = 2  #: VACE reference images: DiffusionConfig.reference_count's default
REFINE_STEPS = 3  #: denoising steps timed, after one warm-up step
REFINE_WINDOW_STEPS = 30  #: DiffusionConfig.steps' default: a window's time is extrapolated to this many steps
GUIDANCE_SCALE = 5.0  #: DiffusionConfig.guidance_scale's default (> 1: two forward passes a step)
TEXT_TOKENS = 512  #: WanVACEPipeline's max_sequence_length: the prompt embeddings' length
NOT_RUN = "not run: needs CUDA (torch sees no GPU)"
SAME_STRATEGY_TARGET = "faster than the CPU run, PSNR within 1 dB of it"
OTHER_STRATEGY_TARGET = "faster than the CPU run (another strategy: scores differ)"
KERNELS_ROW = "gsplat kernels: first gsplat.rasterization call on CUDA (builds them unless a build is cached)"

#: Wan2.1-VACE-1.3B's transformer, as diffusers' conversion script builds it (huggingface/diffusers,
#: scripts/convert_wan_to_diffusers.py, ``get_transformer_config("Wan-VACE-1.3B")``, commit 7d56827); the values the
#: script leaves out are WanVACETransformer3DModel's defaults (rope_max_seq_len 1024, image_dim None).
WAN_VACE_1_3B: dict[str, Any] = {
    "added_kv_proj_dim": None, "attention_head_dim": 128, "cross_attn_norm": True, "eps": 1e-06, "ffn_dim": 8960,
    "freq_dim": 256, "in_channels": 16, "num_attention_heads": 12, "num_layers": 30, "out_channels": 16,
    "patch_size": [1, 2, 2], "qk_norm": "rms_norm_across_heads", "text_dim": 4096,
    "vace_layers": [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28], "vace_in_channels": 96,
}
#: The tiny configuration of tests/tiny_pipelines.py's WanVACE: the code path check on a CPU.
TINY_VACE: dict[str, Any] = {
    "patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 16,
    "out_channels": 16, "text_dim": 32, "freq_dim": 256, "ffn_dim": 32, "num_layers": 3, "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 32, "vace_layers": [0, 2], "vace_in_channels": 96,
}
WAN_VAE_SPATIAL, WAN_VAE_TEMPORAL = 8, 4  #: Wan 2.1's VAE: 8x smaller sides, 4x fewer frames (after the first)

#: (label, render_mode, packed, sh_degree, rasterize_mode) of the CPU-vs-gsplat rows.
RASTER_MODES = (
    ("RGB, packed", "RGB", True, None, "classic"),
    ("RGB, SH degree 3, not packed", "RGB", False, 3, "classic"),
    ("RGB+ED, SH degree 3, not packed (as training)", "RGB+ED", False, 3, "classic"),
    ("RGB+ED, SH degree 3, packed, antialiased", "RGB+ED", True, 3, "antialiased"),
)
RASTER_SCENE = (20_000, 320, 180, 2)  #: Gaussians, width, height, cameras of each comparison scene
VALUE_TOLERANCE = 2e-4  #: colours and alphas (absolute), expected depth (relative to the largest): gsplat's fast math
GRAD_TOLERANCE = 2e-3  #: each gradient, relative to its largest magnitude
TIPPED_SHARE = 1e-3  #: share of pixels and of Gaussians allowed beyond them (a rounding can tip a pair across 1/255)
GRAD_KEYS = ("means", "quats", "scales", "opacities", "colors")


def bench_gpu(work: Path, steps: int = STEPS, *, sample_preset: str = "default", refine_frames: int = REFINE_FRAMES,
              refine_steps: int = REFINE_STEPS, progress: bool | None = None) -> list[dict[str, Any]]:
    """The GPU check's rows (module docstring), with its files in ``work``.

    ``steps``: training steps of each training run; ``sample_preset``: the sample shoot (a key of
    :data:`reshoot.sample.PRESETS`); ``refine_frames`` (k * 4 + 1) and ``refine_steps``: the refine timing's window
    and timed denoising steps; ``progress`` (default: unless ``RESHOOT_QUIET=1``): a line per part on stderr.
    """
    from reshoot.sample import PRESETS

    if sample_preset not in PRESETS or steps < 1 or refine_steps < 1 or (refine_frames - 1) % WAN_VAE_TEMPORAL:
        raise ValueError(f"bench_gpu: expected sample_preset one of {sorted(PRESETS)}, steps >= 1, refine_steps "
                         f">= 1 and refine_frames k * {WAN_VAE_TEMPORAL} + 1; got {sample_preset!r}, {steps}, "
                         f"{refine_steps}, {refine_frames}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    log = _Log(progress_enabled() if progress is None else progress, total=5)
    errors = work / "bench-gpu-errors.txt"
    errors.unlink(missing_ok=True)

    def part(label: str, rows: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        log(label)
        return guarded(label, rows, errors)

    rows = part("device", lambda: [device_row()])
    rows += part("gsplat kernels build", lambda: [kernels_row()] if cuda else [_not_run(
        KERNELS_ROW, "runs", "the first call on CUDA tensors compiles gsplat's CUDA kernels (minutes) unless a build "
        "is cached")])
    rows += part("CPU rasterizer vs gsplat", lambda: raster_rows(cuda, errors))
    rows += part(f"training the {sample_preset} sample ({steps} steps a run)",
                 lambda: training_rows(work, steps, sample_preset, cuda, errors, log))
    rows += part("refine model timing", lambda: refine_rows(cuda, refine_frames, refine_steps))
    log("done")
    return rows


# ---------------------------------------------------------------- rows 1-3: device, kernels, rasterizer


def device_row() -> dict[str, Any]:
    """torch, its CUDA build, the card, gsplat and CUDA_HOME."""
    from importlib.metadata import version

    from torch.utils.cpp_extension import CUDA_HOME

    software = (f"torch {torch.__version__} (CUDA build {torch.version.cuda}), gsplat {version('gsplat')}, "
                f"CUDA_HOME {CUDA_HOME}; {torch.get_num_threads()} CPU threads; run on {datetime.date.today()}")
    row = {"benchmark": "device", "target": "a CUDA device", "detail": software}
    if not torch.cuda.is_available():
        return {**row, "result": "no CUDA device: the GPU rows below say what they need", "pass": None}
    p = torch.cuda.get_device_properties(0)
    return {**row, "pass": True,
            "result": f"{p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}, "
                      f"{p.multi_processor_count} SMs" + (f" (1 of {torch.cuda.device_count()})"
                                                          if torch.cuda.device_count() > 1 else "")}


def kernels_row() -> dict[str, Any]:
    """Seconds of the first ``gsplat.rasterization`` call on CUDA tensors: the JIT build, or loading a cached one."""
    import importlib.util

    from reshoot_bench.raster import frustum_scene

    built_before = _gsplat_build_cached()
    precompiled = importlib.util.find_spec("gsplat.csrc") is not None
    scene = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in frustum_scene(2000, 64, 48).items()}
    start = time.perf_counter()
    import gsplat

    colors, _, _ = gsplat.rasterization(**scene)
    torch.cuda.synchronize()
    took = time.perf_counter() - start
    how = ("gsplat's precompiled extension (gsplat.csrc) loaded" if precompiled else
           "a cached build loaded" if built_before else "compiled now (JIT); later runs load it")
    return {"benchmark": KERNELS_ROW, "result": f"{took:.1f} s: {how}",
            "target": "runs", "pass": bool(torch.isfinite(colors).all()),
            "detail": f"build folder {_gsplat_build_dir()}; 2k Gaussians at 64x48 after the build"}


def _gsplat_build_dir() -> str | None:
    try:
        from torch.utils.cpp_extension import _get_build_directory  # what gsplat's _backend uses

        return _get_build_directory("gsplat_cuda", verbose=False)
    except Exception:  # noqa: BLE001 - a private torch helper: only for the row's detail
        return None


def _gsplat_build_cached() -> bool:
    folder = _gsplat_build_dir()
    return folder is not None and (Path(folder) / "gsplat_cuda.so").is_file()


def raster_rows(cuda: bool, errors: Path) -> list[dict[str, Any]]:
    """One row per mode of :data:`RASTER_MODES`: reshoot's CPU rasterizer against gsplat's CUDA kernels (a mode
    that fails gives its own failed row)."""
    n, width, height, cameras = RASTER_SCENE
    rows = []
    for seed, (label, mode, packed, sh_degree, rasterize_mode) in enumerate(RASTER_MODES):
        name = f"CPU rasterizer vs gsplat: {label}"
        target = (f"<= {100 * TIPPED_SHARE:g}% of pixels beyond {VALUE_TOLERANCE:g}, of Gaussians beyond "
                  f"{GRAD_TOLERANCE:g} of the largest gradient")
        if not cuda:
            rows.append(_not_run(name, target, f"{n // 1000}k Gaussians, {cameras} cameras at {width}x{height}: "
                                               "rasterize_cpu against gsplat.rasterization, values and gradients"))
            continue
        rows += guarded(name, lambda: [compare_with_gsplat(name, target, seed, mode, packed, sh_degree,
                                                           rasterize_mode, "cuda")], errors)
    return rows


def compare_with_gsplat(name: str, target: str, seed: int, mode: str, packed: bool, sh_degree: int | None,
                        rasterize_mode: str, device: str = "cuda") -> dict[str, Any]:
    """The same scene (:data:`RASTER_SCENE`) through ``rasterize_cpu`` and ``gsplat.rasterization`` on ``device``:
    values and gradients."""
    import gsplat

    from reshoot.splat.rasterize import rasterize_cpu
    from reshoot_bench.raster import frustum_scene, kernels_missing

    n, width, height, cameras = RASTER_SCENE
    scene = frustum_scene(n, width, height, n_cameras=cameras, seed=seed, sh_degree=sh_degree)
    options = dict(sh_degree=sh_degree, packed=packed, render_mode=mode, rasterize_mode=rasterize_mode)
    start = time.perf_counter()
    cpu = _values_and_grads(lambda s: rasterize_cpu(**s, **options), scene, "cpu")
    cpu_s = time.perf_counter() - start
    gpu = _values_and_grads(lambda s: gsplat.rasterization(**s, **options, tile_size=16), scene, device)
    (c1, a1, g1), (c2, a2, g2) = cpu, gpu
    pixel = {"RGB": (c1[..., :3] - c2[..., :3]).abs().amax(-1), "alpha": (a1 - a2)[..., 0].abs()}  # [C, H, W]
    if mode == "RGB+ED":
        pixel["depth"] = (c1[..., 3] - c2[..., 3]).abs() / c2[..., 3].abs().max().clamp(min=1e-30)
    grads = {k: (g1[k] - g2[k]).reshape(n, -1).abs().amax(-1) / g2[k].abs().max().clamp(min=1e-30)
             for k in GRAD_KEYS}  # each [N]
    pixels_beyond = int((torch.stack(list(pixel.values())).amax(0) > VALUE_TOLERANCE).sum())
    gaussians_beyond = int((torch.stack(list(grads.values())).amax(0) > GRAD_TOLERANCE).sum())
    n_pixels = c1[..., 0].numel()
    largest = {k: float(v.max()) for k, v in {**pixel, **{f"d {k}": v for k, v in grads.items()}}.items()}
    missing = kernels_missing()
    return {"benchmark": name, "target": target,
            "pass": pixels_beyond <= TIPPED_SHARE * n_pixels and gaussians_beyond <= TIPPED_SHARE * n,
            "result": f"largest: RGB {largest['RGB']:.1e}, alpha {largest['alpha']:.1e}, gradient "
                      f"{max(largest[f'd {k}'] for k in GRAD_KEYS):.1e}; {pixels_beyond} of {n_pixels} pixels and "
                      f"{gaussians_beyond} of {n} Gaussians beyond",
            "measured": {**largest, "pixels_beyond": pixels_beyond, "gaussians_beyond": gaussians_beyond},
            "detail": ", ".join(f"{k} {v:.0e}" for k, v in largest.items()) + f" (colours and alphas absolute, depth "
                      f"and gradients relative to the largest); {n // 1000}k Gaussians, {len(c1)} cameras at "
                      f"{width}x{height}; CPU side {cpu_s:.2f} s forward + backward with "
                      + ("the torch twin: " + missing if missing else "reshoot's compiled kernels")}


def _values_and_grads(render: Callable[[dict], tuple], scene: dict[str, Any], device: str
                      ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Colours, alphas and each input's gradient of a fixed weighting of them, on ``device``, returned on the CPU."""
    inputs = {k: (v.detach().clone().to(device).requires_grad_(k in GRAD_KEYS) if torch.is_tensor(v) else v)
              for k, v in scene.items()}
    colors, alphas, _ = render(inputs)
    weights = torch.rand(colors.shape, generator=torch.Generator().manual_seed(0)).to(device)
    ((colors * weights).sum() + alphas.sum()).backward()
    return colors.detach().cpu(), alphas.detach().cpu(), {k: inputs[k].grad.cpu() for k in GRAD_KEYS}


# ---------------------------------------------------------------- row 4: training the sample


def training_rows(work: Path, steps: int, sample_preset: str, cuda: bool, errors: Path,
                  log: "_Log") -> list[dict[str, Any]]:
    """The sample registered once; then training on the CPU and on CUDA (auto strategy, and the CPU's), scored."""
    from reshoot.sample import PRESETS, make_sample_shoot
    from reshoot.stages.ingest import IngestConfig, run_ingest
    from reshoot.stages.reconstruct import ReconstructConfig
    from reshoot.stages.register import RegisterConfig, run_register
    from reshoot.workspace import Workspace

    start = time.perf_counter()
    config = PRESETS[sample_preset]
    shoot = make_sample_shoot(work / f"sample-{sample_preset}", config)
    ws = Workspace(work / "ws-gpu-check")
    run_ingest(ws, list(shoot.videos.values()), IngestConfig(sync="timecode"))
    registered = run_register(ws, RegisterConfig(survey=shoot.root / "survey")).manifest["summary"]
    rows = [{"benchmark": f"{sample_preset} sample: made, ingested, registered (CPU)",
             "result": f"{len(registered['registered_cameras'])}/{config.n_cameras} cameras, "
                       f"{registered['survey_registered']} survey stills in {time.perf_counter() - start:.0f} s",
             "target": "measured", "pass": None,
             "detail": f"{config.n_cameras} cameras, {config.frame_count} frames at {config.width}x{config.height}; "
                       f"reprojection {registered['mean_reprojection_error_px']:.2f} px; {work / 'ws-gpu-check'}"}]
    log.note(f"training on the CPU, {steps} steps")
    cpu = guarded(f"training on the CPU: {steps} steps, overhead camera", lambda: [train_and_score(
        ws, shoot, work, "the CPU", ReconstructConfig(device="cpu", steps=steps))], errors)[0]
    rows.append(cpu)
    cpu_measured = cpu.get("measured")
    for label, strategy in (("CUDA, --strategy auto", "auto"), ("CUDA, --strategy default (as the CPU run)",
                                                                "default")):
        name = f"training on {label}: {steps} steps, overhead camera"
        if not cuda:
            target = SAME_STRATEGY_TARGET if strategy == "default" else OTHER_STRATEGY_TARGET
            rows.append(_not_run(name, target, f"ReconstructConfig(device='cuda', strategy='{strategy}', "
                                 f"steps={steps}) on the same workspace, scored as the CPU run"))
            continue
        log.note(f"training on {label}, {steps} steps")
        rows += guarded(name, lambda: [train_and_score(
            ws, shoot, work, label, ReconstructConfig(device="cuda", steps=steps, strategy=strategy), cpu_measured)],
            errors)
    return rows


def train_and_score(ws, shoot, work: Path, label: str, config, cpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """One training run (``force``: the workspace's scene is replaced), timed and scored on the overhead camera;
    with ``cpu`` (the CPU run's ``measured``), the speed-up over it and the PSNR difference."""
    from reshoot.stages.reconstruct import run_reconstruct
    from reshoot_bench.reconstruct import score_truth_view

    cuda = config.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = run_reconstruct(ws, config, force=True)
    took = time.perf_counter() - start
    summary, training_s = result.manifest["summary"], result.manifest["timings_s"]["training"]
    slug = f"cuda-{config.strategy}" if cuda else "cpu"
    scored = score_truth_view(ws, shoot, result.path, work / f"overhead-{slug}.png")
    measured = {"seconds": took, "training_s": training_s, **{k: scored[k] for k in (
        "psnr_db", "set_psnr_db", "actor_psnr_db", "ssim")}, "strategy": summary["strategy"]}
    detail = (f"strategy {summary['strategy']} on {summary['device']}; {summary['gaussians']} Gaussians at the end; "
              f"training PSNR {summary['final_train_psnr_db']:.1f} dB; whole stage {took:.0f} s (loading, dense "
              f"set, outputs on the CPU); side by side {work / f'overhead-{slug}.png'}")
    if cuda:
        detail += f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    else:
        detail += f"; {torch.get_num_threads()} torch threads"
    row = {"benchmark": f"training on {label}: {config.steps} steps, overhead camera",
           "result": f"training {training_s:.1f} s; PSNR {_db(scored['psnr_db'])} (set {_db(scored['set_psnr_db'])}, "
                     f"actor {_db(scored['actor_psnr_db'])}), SSIM {scored['ssim']:.3f} over {scored['frames']} frames",
           "target": "measured", "pass": None, "measured": measured, "detail": detail}
    if cpu is None:
        return row
    speedup, delta = cpu["training_s"] / training_s, scored["psnr_db"] - cpu["psnr_db"]
    row["result"] += f"; {speedup:.1f}x the CPU run's speed, {delta:+.2f} dB against it"
    if summary["strategy"] == cpu["strategy"]:
        return {**row, "target": SAME_STRATEGY_TARGET, "pass": speedup > 1 and abs(delta) <= 1.0}
    return {**row, "target": OTHER_STRATEGY_TARGET, "pass": speedup > 1}


def _db(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} dB"


# ---------------------------------------------------------------- row 5: the refine model


@dataclass(frozen=True)
class VaceTiming:
    """What :func:`time_vace_transformer` measured."""

    parameters: int
    latent_shape: tuple[int, ...]  # [1, C, T, h, w] of the noisy latents (reference frames included)
    tokens: int  # the transformer's sequence length after patching
    build_s: float  # random initialisation on the device and the cast to the dtype
    first_step_s: float  # the warm-up step
    step_s: float  # mean of the timed steps
    weights_bytes: int
    peak_bytes: int | None  # largest GPU memory allocated over the steps (None on a CPU)


def time_vace_transformer(config: dict[str, Any], width: int, height: int, frames: int, references: int, steps: int,
                          device: str, dtype: torch.dtype, text_tokens: int = TEXT_TOKENS,
                          guidance_scale: float = GUIDANCE_SCALE) -> VaceTiming:
    """Time denoising steps of a randomly initialised ``WanVACETransformer3DModel(**config)``, as WanVACEPipeline
    runs them: latents of ``frames`` frames at ``width`` x ``height`` after Wan's VAE (8x smaller sides, 4x fewer
    frames after the first) plus ``references`` reference frames; the VACE control latents of the same size
    (``vace_in_channels``); ``text_tokens`` prompt embeddings; with ``guidance_scale`` > 1 a second forward pass on
    negative embeddings; a flow-matching Euler step. Weights are cast as ``from_pretrained(torch_dtype=dtype)`` does
    (the model's ``_keep_in_fp32_modules`` stay float32). One warm-up step, then ``steps`` timed."""
    from reshoot._deps import require
    from reshoot.refine.loading import DIFFUSION_INSTALL_HINT

    diffusers = require("diffusers", DIFFUSION_INSTALL_HINT)
    if (frames - 1) % WAN_VAE_TEMPORAL or width % 16 or height % 16:
        raise ValueError(f"time_vace_transformer: frames must be k * {WAN_VAE_TEMPORAL} + 1 and the sides multiples "
                         f"of 16; got {frames} frames at {width}x{height}")
    cuda = torch.device(device).type == "cuda"
    start = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        model = diffusers.WanVACETransformer3DModel(**config)
    _cast_as_from_pretrained(model, dtype)
    model.eval().requires_grad_(False)
    _sync(cuda)
    build_s = time.perf_counter() - start
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    latent_frames = (frames - 1) // WAN_VAE_TEMPORAL + 1 + references
    shape = (1, config["in_channels"], latent_frames, height // WAN_VAE_SPATIAL, width // WAN_VAE_SPATIAL)
    g = torch.Generator(device).manual_seed(0)
    latents = torch.randn(shape, generator=g, device=device)  # float32, as the pipeline keeps them
    control = torch.randn((1, config["vace_in_channels"], *shape[2:]), generator=g, device=device).to(dtype)
    prompt, negative = (torch.randn((1, text_tokens, config["text_dim"]), generator=g, device=device).to(dtype)
                        for _ in range(2))
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(steps + 1, device=device)

    def step(latents: Tensor, t: Tensor) -> Tensor:
        def forward(text: Tensor) -> Tensor:
            return model(hidden_states=latents.to(dtype), timestep=t.expand(1), encoder_hidden_states=text,
                         control_hidden_states=control, return_dict=False)[0]

        noise = forward(prompt)
        if guidance_scale > 1:
            uncond = forward(negative)
            noise = uncond + guidance_scale * (noise - uncond)
        return scheduler.step(noise, t, latents, return_dict=False)[0]

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    with torch.inference_mode():
        for t in scheduler.timesteps[:steps + 1]:
            start = time.perf_counter()
            latents = step(latents, t)
            _sync(cuda)
            seconds.append(time.perf_counter() - start)
    if not torch.isfinite(latents).all():
        raise RuntimeError("time_vace_transformer: the denoised latents are not finite")
    tokens = latent_frames * (shape[3] // config["patch_size"][1]) * (shape[4] // config["patch_size"][2])
    return VaceTiming(sum(p.numel() for p in model.parameters()), shape, tokens, build_s, seconds[0],
                      sum(seconds[1:]) / max(1, len(seconds) - 1), weights,
                      torch.cuda.max_memory_allocated() if cuda else None)


def _cast_as_from_pretrained(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast to ``dtype`` but keep the parameters and buffers of ``model._keep_in_fp32_modules`` in float32 (diffusers'
    ``from_pretrained`` rule: a name part equal to one of them)."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(torch.float32 if any(k in name.split(".") for k in keep) else dtype)


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def refine_rows(cuda: bool, frames: int, steps: int) -> list[dict[str, Any]]:
    """The 1.3B-sized VACE on CUDA, or (without CUDA) a not-run row and the tiny configuration on the CPU."""
    width, height = REFINE_SIZE
    name = (f"refine model: Wan2.1-VACE-1.3B-sized transformer, random weights, bfloat16, {frames} frames at "
            f"{width}x{height} + {REFINE_REFERENCES} reference images")
    what = (f"{steps} denoising steps (after a warm-up), {'two forward passes' if GUIDANCE_SCALE > 1 else 'one'} "
            f"a step (guidance {GUIDANCE_SCALE:g}); the transformer alone: random latents and {TEXT_TOKENS} text "
            "embeddings of the real shapes, no VAE or text encoder")
    if not cuda:
        timing = time_vace_transformer(TINY_VACE, 128, 64, 17, REFINE_REFERENCES, 2, "cpu", torch.float32)
        return [_not_run(name, "runs; seconds a step and peak memory measured", what),
                {"benchmark": "refine model: code path check, tiny config on CPU (not a timing of the real model)",
                 "result": f"{timing.step_s:.3f} s a step ({timing.parameters / 1e3:.0f}k parameters, "
                           f"{timing.tokens} tokens)",
                 "target": "runs", "pass": timing.step_s > 0, "measured": _timing_numbers(timing),
                 "detail": f"tests/tiny_pipelines.py's WanVACE size, float32, 17 frames at 128x64 + "
                           f"{REFINE_REFERENCES} references, latents {list(timing.latent_shape)}; 2 steps timed; "
                           f"build {timing.build_s:.2f} s"}]
    torch.cuda.empty_cache()  # what training left cached
    timing = time_vace_transformer(WAN_VACE_1_3B, width, height, frames, REFINE_REFERENCES, steps, "cuda",
                                   torch.bfloat16)
    torch.cuda.empty_cache()
    return [{"benchmark": name, "target": "runs; seconds a step and peak memory measured", "pass": True,
             "result": f"{timing.step_s:.2f} s a step, so about {timing.step_s * REFINE_WINDOW_STEPS / 60:.1f} min "
                       f"a {REFINE_WINDOW_STEPS}-step window (transformer only); peak "
                       f"{timing.peak_bytes / 2**30:.1f} GiB",
             "measured": _timing_numbers(timing),
             "detail": f"{timing.parameters / 1e9:.2f}B parameters ({timing.weights_bytes / 2**30:.1f} GiB of "
                       f"weights), latents {list(timing.latent_shape)}, {timing.tokens} tokens; first step "
                       f"{timing.first_step_s:.2f} s; built in {timing.build_s:.1f} s; {what}; config from diffusers' "
                       "scripts/convert_wan_to_diffusers.py (Wan-VACE-1.3B)"}]


def _timing_numbers(timing: VaceTiming) -> dict[str, Any]:
    return {"step_s": timing.step_s, "first_step_s": timing.first_step_s, "build_s": timing.build_s,
            "parameters": timing.parameters, "tokens": timing.tokens, "peak_bytes": timing.peak_bytes}


# ---------------------------------------------------------------- shared


def _not_run(benchmark: str, target: str, what: str) -> dict[str, Any]:
    return {"benchmark": benchmark, "result": NOT_RUN, "target": target, "pass": None, "detail": what}


def guarded(label: str, make: Callable[[], list[dict[str, Any]]], errors: Path) -> list[dict[str, Any]]:
    """``make()``'s rows, or, if it raises, one row saying so (``pass`` False) with the traceback appended to
    ``errors``."""
    try:
        return make()
    except Exception as error:  # noqa: BLE001 - one part's failure must not cost the rest of a one-shot GPU run
        with open(errors, "a") as f:
            f.write(f"## {label}\n\n{traceback.format_exc()}\n")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return [{"benchmark": label, "result": f"failed: {type(error).__name__}: {error}"[:300], "target": "runs",
                 "pass": False, "detail": f"traceback in {errors}"}]


class _Log:
    """A line to stderr per part (and per training run): which, how far along, time so far."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.done, self.start = enabled, total, 0, time.perf_counter()

    def __call__(self, what: str) -> None:
        self.done += 1
        self.note(what if what == "done" else f"{min(self.done, self.total)}/{self.total}: {what}")

    def note(self, what: str) -> None:
        if self.enabled:
            print(f"[bench gpu, {time.perf_counter() - self.start:.0f} s] {what}", file=sys.stderr, flush=True)

"""``reshoot bench gpu`` without CUDA (the GPU hidden from torch): the CPU parts run and are measured, every CUDA part
says it needs CUDA; the rasterizer comparison's code with reshoot standing in for gsplat; and, marked ``gpu``, the
check itself on a CUDA machine."""

from __future__ import annotations

import re

import pytest
import torch

from reshoot.splat.rasterize import rasterize_cpu
from reshoot_bench import gpu as B
from reshoot_bench.raster import engine


@pytest.fixture(scope="module")
def cpu_rows(tmp_path_factory):
    """The check on the small sample with 40 training steps, torch seeing no GPU (about 35 s on 2 cores)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "is_available", lambda: False)
        work = tmp_path_factory.mktemp("bench-gpu")
        return work, B.bench_gpu(work, steps=40, sample_preset="small", progress=False)


def test_without_cuda_every_gpu_row_says_it_needs_cuda(cpu_rows):
    _, rows = cpu_rows
    assert rows[0]["benchmark"] == "device" and rows[0]["result"].startswith("no CUDA device")
    assert "torch 2." in rows[0]["detail"] and "gsplat " in rows[0]["detail"]
    gpu = [r for r in rows if r["result"] == B.NOT_RUN]
    names = [r["benchmark"] for r in gpu]
    assert names[0] == B.KERNELS_ROW and sum(n.startswith("CPU rasterizer vs gsplat") for n in names) == len(
        B.RASTER_MODES)
    assert sum(n.startswith("training on CUDA") for n in names) == 2 and names[-1].startswith("refine model: Wan2.1")
    assert all(r["pass"] is None for r in gpu)
    assert not [r for r in rows if r["pass"] is False], rows  # nothing failed


def test_without_cuda_the_cpu_training_is_timed_and_scored_on_the_overhead_camera(cpu_rows):
    work, rows = cpu_rows
    setup = next(r for r in rows if r["benchmark"].startswith("small sample"))
    assert setup["result"].startswith("3/3 cameras")
    cpu = next(r for r in rows if r["benchmark"].startswith("training on the CPU"))
    found = re.match(r"training ([\d.]+) s; PSNR ([\d.]+) dB \(set ([\d.]+) dB", cpu["result"])
    seconds, psnr, set_psnr = found.groups()
    assert float(seconds) > 0 and float(psnr) > 5 and float(set_psnr) > 5
    assert cpu["measured"]["strategy"] == "default"
    assert cpu["measured"]["psnr_db"] == pytest.approx(float(psnr), abs=0.01)
    assert "strategy default on cpu" in cpu["detail"] and (work / "overhead-cpu.png").is_file()


def test_without_cuda_a_tiny_refine_model_runs_the_timing_code(cpu_rows):
    _, rows = cpu_rows
    tiny = rows[-1]
    assert tiny["benchmark"].startswith("refine model: code path check, tiny config on CPU")
    assert tiny["pass"] is True and tiny["measured"]["step_s"] > 0 and tiny["measured"]["tokens"] == 7 * 4 * 8


def test_refine_timing_refuses_sizes_the_model_cannot_take():
    with pytest.raises(ValueError, match="k \\* 4 \\+ 1 .* got 16 frames at 128x64"):
        B.time_vace_transformer(B.TINY_VACE, 128, 64, 16, 0, 1, "cpu", torch.float32)


def test_the_1_3b_config_builds_the_published_size():
    """Wan2.1-VACE-1.3B: 30 blocks of width 1536 and 15 VACE blocks (counted on the meta device: no memory)."""
    from diffusers import WanVACETransformer3DModel

    with torch.device("meta"):
        model = WanVACETransformer3DModel(**B.WAN_VACE_1_3B)
    assert model.config.num_attention_heads * model.config.attention_head_dim == 1536
    assert len(model.blocks) == 30 and len(model.vace_blocks) == 15
    assert 1.3e9 < sum(p.numel() for p in model.blocks.parameters()) < 1.5e9


def test_weights_are_cast_as_from_pretrained_casts_them():
    """bfloat16, except the modules diffusers keeps in float32 (norms, time embedder, RoPE, scale-shift tables)."""
    from diffusers import WanVACETransformer3DModel

    model = WanVACETransformer3DModel(**B.TINY_VACE)
    B._cast_as_from_pretrained(model, torch.bfloat16)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["scale_shift_table"] == dtypes["blocks.0.norm2.weight"] == torch.float32
    assert dtypes["condition_embedder.time_embedder.linear_1.weight"] == torch.float32
    assert dtypes["blocks.0.attn1.to_q.weight"] == dtypes["vace_blocks.0.proj_in.weight"] == torch.bfloat16


def test_rasterizer_comparison_agrees_when_both_sides_are_reshoot(monkeypatch):
    """The comparison row's code, with reshoot's torch twin standing in for gsplat on the CPU: it must agree."""
    import gsplat

    def twin(**scene):
        scene.pop("tile_size")
        with engine("twin"):
            return rasterize_cpu(**scene)

    monkeypatch.setattr(gsplat, "rasterization", twin)
    monkeypatch.setattr(B, "RASTER_SCENE", (1500, 64, 48, 2))
    row = B.compare_with_gsplat("twin vs compiled", "agree", 0, "RGB+ED", True, 3, "antialiased", device="cpu")
    assert row["pass"] is True, row
    assert row["measured"]["RGB"] < 1e-4 and row["measured"]["alpha"] < 1e-4
    assert set(row["measured"]) >= {"depth", "d means", "d quats", "d scales", "d opacities", "d colors"}


def test_a_failing_part_gives_a_row_and_a_traceback(tmp_path):
    def broken():
        raise RuntimeError("no kernels here")

    rows = B.guarded("gsplat kernels build", broken, tmp_path / "errors.txt")
    assert rows == [{"benchmark": "gsplat kernels build", "result": "failed: RuntimeError: no kernels here",
                     "target": "runs", "pass": False, "detail": f"traceback in {tmp_path / 'errors.txt'}"}]
    assert "raise RuntimeError" in (tmp_path / "errors.txt").read_text()


def test_bad_arguments_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="sample_preset one of .* got 'huge', 300, 3, 81"):
        B.bench_gpu(tmp_path / "w", sample_preset="huge")
    assert not (tmp_path / "w").exists()


@pytest.mark.gpu
def test_gpu_check_on_cuda(tmp_path):
    """The check on a CUDA machine: the small sample and 200 steps, the refine model at its real size (minutes, most
    of them gsplat's first build)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    rows = B.bench_gpu(tmp_path, steps=200, sample_preset="small", refine_steps=2, progress=False)
    failed = [r for r in rows if r["result"].startswith("failed")]
    assert not failed, failed
    assert not [r for r in rows if r["result"] == B.NOT_RUN]
    raster = [r for r in rows if r["benchmark"].startswith("CPU rasterizer vs gsplat")]
    assert len(raster) == len(B.RASTER_MODES) and all(r["pass"] for r in raster), raster
    gpu_runs = [r for r in rows if r["benchmark"].startswith("training on CUDA")]
    assert len(gpu_runs) == 2 and all(r["measured"]["psnr_db"] > 5 for r in gpu_runs)
    assert gpu_runs[0]["measured"]["strategy"] == "mcmc" and gpu_runs[1]["measured"]["strategy"] == "default"
    assert rows[-1]["measured"]["peak_bytes"] > 0 and rows[-1]["measured"]["step_s"] > 0

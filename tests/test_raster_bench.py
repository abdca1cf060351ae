"""The rasterizer benchmark on tiny scenes: every engine measured, rows with real numbers, the agreement rows
passing, all-pairs skipped beyond its budget, and compiled rows that say why when the kernels are missing."""

from __future__ import annotations

import math

import pytest
import torch

from reshoot.splat import kernels as K
from reshoot.splat.kernels import composite_kernels, kernels_for
from reshoot_bench import raster as B

TINY = {"sizes": ((64, 48),), "repeats": 1, "n_cameras": 2, "threads": 1, "progress": False}
KEYS = {"benchmark", "result", "target", "pass", "detail", "measured"}


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["benchmark"]: row for row in rows}


@pytest.mark.skipif(K.composite_kernels() is None, reason="reshoot's compiled CPU kernels are not built here")
def test_every_engine_is_measured_on_the_same_scenes():
    rows = B.bench_rasterizer(counts=(500, 2000), **TINY)
    assert all(set(row) == KEYS and row["pass"] in (True, False, None) for row in rows)
    rows = by_name(rows)
    assert len(rows) == 2 + 2 * 3 + 1
    agree = rows["compiled vs twin: values and gradients, 64x48, 2k Gaussians"]
    assert agree["pass"] is True and agree["measured"]["pixels"] == 64 * 48
    assert 0 < agree["measured"]["RGB"] < 1e-3 and agree["measured"]["d means"] < 1e-3  # measured, not blank
    assert rows["tiled vs all-pairs values, 96x54, 2k Gaussians"]["pass"] is True
    for n in (500, 2000):
        compiled, twin, all_pairs = (rows[f"64x48, {B._count(n)} Gaussians, fwd+bwd: {engine}"]["measured"]
                                     for engine in ("compiled kernels", "torch twin", "all-pairs reference"))
        for m in (compiled, twin, all_pairs):
            assert m["fwd_s"] > 0 and m["bwd_s"] > 0 and m["step_s"] == m["fwd_s"] + m["bwd_s"]
            assert m["pairs_per_s_per_core"] == pytest.approx(m["pairs"] / m["step_s"])  # one thread
            assert m["peak_bytes"] >= 0 and m["all_pairs"] == n * 64 * 48
        assert compiled["speedup_vs_twin"] == pytest.approx(twin["step_s"] / compiled["step_s"])
        assert 0 < compiled["pairs"] < n * 64 * 48 and math.isclose(compiled["pairs"], twin["pairs"], rel_tol=0.01)
        assert compiled["pairs"] % 64 == 0  # intersections x 8 x 8 pixels
        assert all_pairs["pairs"] == n * 64 * 48 and all_pairs["peak_bytes"] > 1 << 20  # fits the budget: measured
        row = rows[f"64x48, {B._count(n)} Gaussians, fwd+bwd: compiled kernels"]
        assert f"{compiled['speedup_vs_twin']:.1f}x the twin" in row["result"]
    cameras = rows["64x48, 2k Gaussians, 2 cameras in one call: compiled kernels"]["measured"]
    assert cameras["n_cameras"] == 2 and cameras["step_s"] > 0


def test_all_pairs_beyond_its_budget_is_extrapolated_not_run():
    rows = B.bench_rasterizer(counts=(1000,), all_pairs_budget_bytes=1 << 20, **TINY)
    row = by_name(rows)["64x48, 1k Gaussians, fwd+bwd: all-pairs reference"]
    assert row["result"].startswith("not run: needs ") and row["pass"] is None
    m = row["measured"]
    assert m["all_pairs"] == 1000 * 64 * 48 and m["need_bytes"] > 1 << 20 and m["need_s"] > 0
    assert "extrapolated from its" in row["detail"] and "fwd_s" not in m
    rows = B.bench_rasterizer(counts=(1000,), all_pairs_budget_s=1e-6, **TINY)  # the time budget alone
    assert by_name(rows)["64x48, 1k Gaussians, fwd+bwd: all-pairs reference"]["result"].startswith("not run")


def test_without_kernels_the_compiled_rows_say_why(monkeypatch):
    monkeypatch.setenv("RESHOOT_KERNELS", "0")
    monkeypatch.setattr(K, "composite_kernels", lambda: None)
    assert B.kernels_missing() == "RESHOOT_KERNELS=0 switches them off"
    rows = by_name(B.bench_rasterizer(counts=(500,), all_pairs_budget_bytes=0, **TINY))
    compiled = rows["64x48, 500 Gaussians, fwd+bwd: compiled kernels"]
    assert compiled["result"] == "not available: RESHOOT_KERNELS=0 switches them off" and compiled["pass"] is False
    assert rows["compiled vs twin: values and gradients, 64x48, 500 Gaussians"]["pass"] is False
    assert rows["64x48, 500 Gaussians, fwd+bwd: torch twin"]["measured"]["step_s"] > 0  # the twin still runs


def test_engine_switches_the_path_and_restores_it():
    with B.engine("twin"):
        assert kernels_for(torch.zeros(1)) is None
    assert (kernels_for(torch.zeros(1)) is None) == (composite_kernels() is None)
    with pytest.raises(ValueError, match="'compiled' or 'twin'"):
        with B.engine("cuda"):
            pass


def test_frustum_scene_gives_sh_colours_like_training():
    scene = B.frustum_scene(50, 64, 48, sh_degree=3)
    assert scene["colors"].shape == (50, 16, 3)
    rgb = B.frustum_scene(50, 64, 48)["colors"]  # the same base colours
    torch.testing.assert_close(0.5 + B.SH_C0 * scene["colors"][:, 0], rgb)

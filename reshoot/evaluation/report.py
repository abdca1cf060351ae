"""The eval report: the verdict on a shot (usable, needs fixes, not usable) and its thresholds, the figures as text,
the pictures (frames beside the truth, error heatmaps) and report.html.

:func:`reshoot.evaluation.evaluate.write_report` scores a shot and writes the report with these.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from reshoot.viz import contact_sheet, save_png

NOT_USABLE_BELOW_PSNR_DB = {"whole frame": 20.0, "set": 20.0, "actor": 16.0}
VERDICTS = ("usable", "needs fixes", "not usable")


#: The verdict on a shot, from its PSNR against the truth per region (dB). Usable: every region at or above its
#: USABLE figure. Not usable: any region below its NOT_USABLE figure. Needs fixes: in between. 8-bit PSNR 20 dB is an
#: RMS error of 26 levels (10 %), visible everywhere; 25 dB 14 levels; 27 dB 11 levels, hard to see on a moving
#: shot. The actor's figures are lower: a small moving region, all edges and detail, scored without the forgiving
#: flat walls and floor.
USABLE_MIN_PSNR_DB = {"whole frame": 25.0, "set": 27.0, "actor": 22.0}


#: The error heat map's colour scale: 0 to this many 8-bit levels of mean absolute error (more shows as the top).
HEATMAP_MAX_LEVELS = 64.0


def flicker_text(value: float | None) -> str:
    """A flicker figure for tables and the report: ``-`` where there was none (no consecutive frames with a truth)."""
    return "-" if value is None else f"{value:.2f}"


def ssim_text(value: float | None) -> str:
    """An SSIM for tables and the report: ``-`` where there was none (e.g. no frame shows the actor)."""
    return "-" if value is None else f"{value:.3f}"


def db_text(value: float | None) -> str:
    """A PSNR for tables and the report: ``-`` where there was none (e.g. no frame shows the actor)."""
    return "-" if value is None else f"{value:.2f} dB"


def shot_verdict(figures: dict[str, Any]) -> dict[str, str]:
    """``usable``, ``needs fixes`` or ``not usable`` for a shot's figures (from :func:`reshoot.evaluation.evaluate.score_frames`), by the
    thresholds :data:`USABLE_MIN_PSNR_DB` and :data:`NOT_USABLE_BELOW_PSNR_DB`, and the reason: which regions
    failed which threshold. A region without a figure (no actor mask) is not judged, and the reason says so."""
    psnrs = {"whole frame": figures["psnr_db"], "set": figures.get("set_psnr_db"),
             "actor": figures.get("actor_psnr_db")}
    judged = {region: value for region, value in psnrs.items() if value is not None}
    unjudged = "" if len(judged) == len(psnrs) else (
        f" ({' and '.join(r for r in psnrs if r not in judged)} not judged: no actor region known)")
    failing = {region: f"{region} {value:.2f} dB < {NOT_USABLE_BELOW_PSNR_DB[region]:g} dB"
               for region, value in judged.items() if value < NOT_USABLE_BELOW_PSNR_DB[region]}
    short = {region: f"{region} {value:.2f} dB < {USABLE_MIN_PSNR_DB[region]:g} dB"
             for region, value in judged.items() if value < USABLE_MIN_PSNR_DB[region] and region not in failing}
    if failing:
        also = f"; also short of usable: {'; '.join(short.values())}" if short else ""
        return {"verdict": "not usable", "verdict_reason": "; ".join(failing.values()) + unjudged + also}
    if short:
        return {"verdict": "needs fixes", "verdict_reason": "; ".join(short.values()) + unjudged}
    return {"verdict": "usable", "verdict_reason": "every region meets its threshold" + unjudged}


def write_pictures(out: Path, guide: np.ndarray, refined: np.ndarray, truth: dict[int, np.ndarray],
                   camera: str) -> None:
    """side_by_side.png (truth, guide, refined at five instants) and flipbook.png (every frame, a strip each)."""
    def u8(a: np.ndarray) -> np.ndarray:
        return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)

    known = sorted(truth)
    picks = [known[i] for i in np.unique(np.linspace(0, len(known) - 1, min(5, len(known))).round().astype(int))]
    save_png(contact_sheet({"truth": [(f"f{i}", truth[i]) for i in picks],
                            "guide": [(f"f{i}", u8(guide[i])) for i in picks],
                            "refined": [(f"f{i}", u8(refined[i])) for i in picks]},
                           title=f"{camera}: what it filmed, the guide frames, the refined shot"), out / "side_by_side.png")
    step = max(1, len(known) // 12)
    strip = known[::step]
    small = {name: [(f"{i}", _shrink(frames[i])) for i in strip]
             for name, frames in (("truth", {i: truth[i] for i in strip}), ("refined", {i: u8(refined[i]) for i in strip}))}
    save_png(contact_sheet(small, title=f"{camera}: flip-book, every {step} frame(s)"), out / "flipbook.png")


def write_error_heatmap(out: Path, shots: dict[str, np.ndarray], truth: dict[int, np.ndarray],
                   actor: dict[int, np.ndarray], camera: str) -> None:
    """error_heatmap.png: per pixel, each shot's absolute error against the truth (8-bit levels, mean of the
    channels), averaged over the frames with a truth and at the middle one (the actor region outlined in green), on
    the colour scale 0 to :data:`HEATMAP_MAX_LEVELS` drawn beneath with its legend. Small pictures are enlarged."""
    known = sorted(truth)
    middle = known[len(known) // 2]
    zoom = max(1, -(-300 // truth[middle].shape[1]))  # at least 300 pixels wide, whole pixels

    def picture(error: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        colours = _heat_colours(error)
        if mask is not None:
            colours[_outline(mask)] = (0, 230, 0)
        return colours.repeat(zoom, axis=0).repeat(zoom, axis=1)

    rows = {}
    for name, shot in shots.items():
        total = np.zeros(truth[middle].shape[:2], np.float64)
        for i in known:
            error = np.abs(shot[i].astype(np.float32) * 255 - truth[i].astype(np.float32)).mean(axis=2)
            total += error
            if i == middle:
                at_middle = (f"frame {middle}: {error.mean():.1f} on average", picture(error, actor.get(middle)))
        mean = total / len(known)
        rows[name] = [(f"mean of {len(known)} frames: {mean.mean():.1f} on average", picture(mean)), at_middle]
    sheet = contact_sheet(rows, title=f"{camera}: error per pixel against the truth")
    save_png(_with_colour_bar(sheet), out / "error_heatmap.png")


#: The heat map's colours from no error to HEATMAP_MAX_LEVELS and above (black, purple, red, orange, pale yellow).
_HEAT_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64)


def _heat_colours(error: np.ndarray) -> np.ndarray:
    """Errors in 8-bit levels ``[H, W]`` as colours ``[H, W, 3]`` uint8 on the scale 0 to HEATMAP_MAX_LEVELS."""
    x = np.clip(error / HEATMAP_MAX_LEVELS, 0, 1) * (len(_HEAT_ANCHORS) - 1)
    stops = np.arange(len(_HEAT_ANCHORS))
    return np.stack([np.interp(x, stops, _HEAT_ANCHORS[:, c]) for c in range(3)], axis=-1).round().astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` [H, W] bool on its border (a neighbour outside it).  # [H, W] bool"""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def _with_colour_bar(sheet, bar_px: int = 14):
    """``sheet`` (a PIL image) with the heat map's colour scale and its legend beneath."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    legend = ["mean absolute error, 8-bit levels, mean of R, G, B (0: identical)",
              "left: averaged over the frames; right: the middle frame, the actor region outlined in green"]
    width = int(max(sheet.width, 20 + max(font.getlength(line) for line in legend)))
    figure = Image.new("RGB", (width, sheet.height + bar_px + 62), (24, 24, 28))
    figure.paste(sheet, (0, 0))
    ramp = _heat_colours(np.tile(np.linspace(0, HEATMAP_MAX_LEVELS, width - 20), (bar_px, 1)))
    figure.paste(Image.fromarray(ramp), (10, sheet.height + 4))
    draw = ImageDraw.Draw(figure)
    y = sheet.height + 6 + bar_px
    for level in np.linspace(0, HEATMAP_MAX_LEVELS, 5):
        x = 10 + level / HEATMAP_MAX_LEVELS * (width - 21)
        label = f"{level:.0f}" + ("+" if level == HEATMAP_MAX_LEVELS else "")
        draw.line([(x, y - 2), (x, y + 2)], fill=(240, 240, 240))
        draw.text((min(x, width - 10 - font.getlength(label)), y + 2), label, fill=(240, 240, 240), font=font)
    for k, line in enumerate(legend):
        draw.text((10, y + 20 + 16 * k), line, fill=(200, 200, 200), font=font)
    return figure


def _shrink(image: np.ndarray, height: int = 72) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * height / h)), height), Image.BILINEAR))


def report_html(metrics: dict[str, Any], camera: str, workspace_root: Path, scene_3d: str = "") -> str:
    """The report a supervisor reads: the verdict, headline figures by region, per-frame plots (inline SVG), the
    error heat map, the pictures, and the ``scene_3d`` section (HTML) when given."""
    g, r = metrics["guide"], metrics["refined"]
    rows = "".join(
        f"<tr><td>{name}</td><td>{m['psnr_db']:.2f} dB (min {m['psnr_min_db']:.2f})</td>"
        f"<td>{db_text(m.get('set_psnr_db'))}</td><td>{db_text(m.get('actor_psnr_db'))}</td><td>{m['ssim']:.3f}</td>"
        f"<td>{ssim_text(m.get('set_ssim'))}</td><td>{ssim_text(m.get('actor_ssim'))}</td>"
        f"<td>{flicker_text(m['flicker'])}</td><td>{m['verdict']}</td></tr>"
        for name, m in (("guide frames", g), (f"refined ({html.escape(metrics['refiner'])})", r)))
    matched = ("" if g.get("psnr_colour_matched_db") is None else
               f"<p>With the camera's own colours matched (one 3x4 colour map for the whole shot, fitted to the truth: "
               f"its white balance and exposure, which no other camera can tell, not the scene's shapes): guide frames "
               f"{g['psnr_colour_matched_db']:.2f} dB, refined {r['psnr_colour_matched_db']:.2f} dB over the whole "
               f"frame.</p>")
    closer = ("The refined shot is closer to the truth than the guide frames" if r["psnr_db"] > g["psnr_db"]
              else "The refiner did not bring the shot closer to the truth")
    plots = "".join(_svg_plot([g, r], key, label) for key, label in (("psnr_db", "PSNR (dB) per frame, whole frame"),
                                                                      ("actor_psnr_db", "PSNR (dB) per frame, actor"),
                                                                      ("ssim", "SSIM per frame"),
                                                                      ("flicker", "flicker (8-bit levels) per frame")))
    why = ("no --truth-masks were given" if metrics.get("truth") else
           "one that moves, or filmed under 3 frames, has no clean plate to find it by")
    regions = (f"the actor is {metrics['actor_region']}" if metrics["actor_region"] else
               f"no actor region is known for this camera ({why}), so only the whole frame is scored")
    actor_note = (f" The actor appears in {r['actor_frames']} of them, on {r['actor_fraction']:.1%} of the picture on "
                  "average." if r.get("actor_fraction") is not None else "")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>reshoot eval: {html.escape(camera)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:24px auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px}}img{{max-width:100%}}.legend span{{margin-right:16px}}
.verdict{{padding:10px 16px;border-radius:6px;color:#fff;font-size:1.2em}}</style></head><body>
<h1>Reshooting {html.escape(camera)}</h1>
{_verdict_html(metrics)}
<p>Workspace <code>{html.escape(str(workspace_root))}</code>. The camera's angle was rendered from the splat scene (which
never saw this camera's footage) and refined, then compared with what the camera really filmed, on
{len(g['per_frame'])} frames.{html.escape(actor_note)} {html.escape(closer)}.{_truth_html(metrics.get("truth"))}</p>
<table><tr><th rowspan="2">shot</th><th colspan="3">PSNR</th><th colspan="3">SSIM</th><th rowspan="2">flicker</th>
<th rowspan="2">verdict</th></tr><tr><th>whole frame</th><th>set</th><th>actor</th><th>whole frame</th><th>set</th>
<th>actor</th></tr>{rows}</table>
<p>Regions: {html.escape(regions)}. A region's PSNR is over its pixels only, its SSIM
the SSIM map averaged over them; each is the mean over the frames the region is in (<code>-</code>: in none).
PSNR and SSIM: higher is closer to the truth (identical: infinite PSNR, SSIM 1). Flicker: the mean difference
between the shot's frame-to-frame change and the truth's, in 8-bit levels (0: the shot changes exactly as the
truth does).</p>
{matched}
<div class="legend"><span style="color:#d62728">&#9632; guide frames</span><span style="color:#1f77b4">&#9632; refined</span></div>
{plots}
<h2>Where the errors are</h2><img src="error_heatmap.png" alt="per-pixel error heat map of the guide and refined shots">
<p>Per pixel, the absolute difference from the truth in 8-bit levels (mean of the three channels): averaged over
every frame (left) and at the middle frame, with the actor region outlined in green (right). Black: no error; pale
yellow: {HEATMAP_MAX_LEVELS:.0f} levels or more.</p>
<h2>Side by side</h2><img src="side_by_side.png" alt="truth, guide and refined frames">
<h2>Flip-book</h2><img src="flipbook.png" alt="truth and refined, every few frames">
{scene_3d}
<p style="color:#777">metrics.json has every number on this page.</p></body></html>
"""


def _truth_html(source: dict[str, Any] | None) -> str:
    """Where an outside camera's truth came from, or where the sample's hidden camera was placed (nothing for a
    held-out set camera)."""
    if not source:
        return ""
    if "footage" not in source:
        return f" Where it stood: {html.escape(source['placed_by'])}."
    return (f" What it filmed: <code>{html.escape(source['footage'])}</code>; its calibration: <code>"
            f"{html.escape(source['calibration'])}</code>, placed in the scene's world by "
            f"{html.escape(source['placed_by'])}.")


def _verdict_html(metrics: dict[str, Any]) -> str:
    """The verdict on the refined shot, its reason, and the thresholds it follows."""
    colour = {"usable": "#2e7d32", "needs fixes": "#ef6c00", "not usable": "#c62828"}[metrics["verdict"]]
    usable = ", ".join(f"{region} &ge; {db:g} dB" for region, db in USABLE_MIN_PSNR_DB.items())
    unusable = " or ".join(f"{region} &lt; {db:g} dB" for region, db in NOT_USABLE_BELOW_PSNR_DB.items())
    return (f'<p class="verdict" style="background:{colour}">Verdict on the refined shot: <b>{metrics["verdict"]}</b>'
            f' &mdash; {html.escape(metrics["verdict_reason"])}</p>\n<p>The verdict follows the PSNR of each region '
            f"against the truth: <b>usable</b> when {usable}; <b>not usable</b> when {unusable}; <b>needs fixes</b> in "
            "between (the guide frames are judged the same way, in the table).</p>")


def _svg_plot(series: list[dict[str, Any]], key: str, title: str, width: int = 900, height: int = 180) -> str:
    """A small line chart of ``key`` per frame for each series (guide red, refined blue), as inline SVG."""
    colours = ["#d62728", "#1f77b4"]
    points = [[(row["frame"], row[key]) for row in s["per_frame"] if row.get(key) is not None] for s in series]
    values = [v for p in points for _, v in p]
    if not values:
        return ""
    frames = [f for p in points for f, _ in p]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    f0, f1 = min(frames), max(frames) or 1

    def xy(frame: float, value: float) -> str:
        x = 50 + (frame - f0) / max(f1 - f0, 1) * (width - 60)
        y = 10 + (hi - value) / span * (height - 40)
        return f"{x:.1f},{y:.1f}"

    lines = "".join(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(xy(f, v) for f, v in p)}"/>'
                    for p, c in zip(points, colours))
    return (f'<h3>{html.escape(title)}</h3><svg width="{width}" height="{height}" style="background:#fafafa">'
            f'<text x="4" y="16" font-size="11">{hi:.2f}</text><text x="4" y="{height - 28}" font-size="11">{lo:.2f}'
            f'</text><text x="50" y="{height - 6}" font-size="11">frame {f0}</text><text x="{width - 80}" '
            f'y="{height - 6}" font-size="11">frame {f1}</text>{lines}</svg>')

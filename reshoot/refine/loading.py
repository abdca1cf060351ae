"""Settings of the diffusion refiners and the loading of their diffusers pipelines.

:func:`load_pipeline` reads the folder's (or hub repository's) ``model_index.json``, checks that the pipeline it holds
suits the refiner asked for, and loads it with ``from_pretrained`` on the configured device and dtype. Every way this
can go wrong (no folder, not a diffusers folder, the wrong model, no network for a hub id, no CUDA) raises
:class:`RefinerError` saying what to do.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from reshoot._deps import require

log = logging.getLogger(__name__)

DIFFUSION_INSTALL_HINT = "pip install 'reshoot[diffusion]'  (diffusers, transformers, accelerate, ftfy, sentencepiece)"


class RefinerError(ValueError):
    """A refiner cannot run as configured; the message names the thing, what was expected and what to do."""


@dataclass(frozen=True)
class DiffusionConfig:
    """Settings shared by the diffusion refiners (``wan-vace``, ``ltx``, ``v2v``)."""

    model: str | None = None
    """A local diffusers folder (with model_index.json) or a Hugging Face hub id; None: the refiner's default id
    (see DEFAULT_MODELS), which needs the hub or its cache."""
    device: str = "auto"
    """Where the model runs: "auto" (CUDA when available, else CPU), "cpu" or "cuda" (or "cuda:N")."""
    dtype: str = "auto"
    """Weights' precision: "auto" (float32 on CPU, bfloat16 on CUDA), "float32", "bfloat16" or "float16". bfloat16 on
    a CPU is about 30x slower than float32. Wan VAEs always stay float32."""
    steps: int = 30
    """Denoising steps per window (v2v and ltx run only the last strength x steps of them on the guide)."""
    guidance_scale: float = 5.0
    """Classifier-free guidance scale; 1.0 turns guidance off (half the compute). LTX-Video suggests about 3."""
    strength: float = 0.6
    """How far the model may move away from the guide, in (0, 1]: v2v's denoising strength and the ltx guide
    condition's (1 - strength is the noise level the guide enters at). wan-vace ignores it."""
    prompt: str = ""
    """Text describing the shot."""
    negative_prompt: str = ""
    """Text describing what the shot must not look like (used when guidance_scale > 1)."""
    seed: int = 0
    """Base random seed; window i uses reshoot.refine.windows.window_seed(seed, i)."""
    window: int = 81
    """Frames per temporal window, rounded down to the model's rule (k*4+1 for Wan and CogVideoX, k*8+1 for LTX)."""
    overlap: int = 12
    """Frames shared by neighbouring windows, cross-faded linearly (the last window may share more)."""
    max_side: int | None = 832
    """Longest side of the processing size: larger guides are scaled down, then each side is rounded to the model's
    multiple (16 for Wan and CogVideoX, 32 for LTX); the output is resized back to the guide's size. None: no limit."""
    cpu_offload: bool = False
    """Keep each model component on the CPU until it runs (diffusers' enable_model_cpu_offload): less GPU memory,
    slower. Ignored on a CPU."""
    vae_tiling: bool = False
    """Encode and decode frames in spatial tiles (less memory for large frames)."""
    vae_slicing: bool = False
    """Encode and decode one batch element at a time (less memory)."""
    confidence_threshold: float = 0.5
    """wan-vace: pixels whose confidence is below this are generated."""
    confidence_feather: float = 0.1
    """wan-vace: the band above confidence_threshold over which generated pixels fade into the guide. The output
    equals the guide exactly where confidence >= confidence_threshold + confidence_feather; 0: a hard edge."""
    reference_count: int = 2
    """wan-vace: how many of the nearest real cameras give VACE a reference image (their frame at each window's
    middle); 0: none."""

    def __post_init__(self) -> None:
        checks = [
            (self.device == "auto" or re.fullmatch(r"cpu|cuda(:\d+)?", self.device), "device",
             '"auto", "cpu", "cuda" or "cuda:N"'),
            (self.dtype in DTYPES, "dtype", " or ".join(f'"{name}"' for name in DTYPES)),
            (self.steps >= 1, "steps", ">= 1"),
            (self.guidance_scale >= 0, "guidance_scale", ">= 0"),
            (0 < self.strength <= 1, "strength", "in (0, 1]"),
            (self.window >= 2, "window", ">= 2"),
            (0 <= self.overlap < self.window, "overlap", f"in [0, window={self.window})"),
            (self.max_side is None or self.max_side >= 16, "max_side", ">= 16 or None"),
            (0 <= self.confidence_threshold <= 1, "confidence_threshold", "in [0, 1]"),
            (0 <= self.confidence_feather <= 1, "confidence_feather", "in [0, 1]"),
            (self.reference_count >= 0, "reference_count", ">= 0"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise RefinerError(f"DiffusionConfig.{name}: expected {expected}, got {getattr(self, name)!r}")


#: DiffusionConfig.dtype names and their torch dtypes' names ("auto" is resolved by :func:`resolve_device_dtype`).
DTYPES = {"auto": None, "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}

#: The model each refiner loads when DiffusionConfig.model is None.
DEFAULT_MODELS = {
    "wan-vace": "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
    "ltx": "Lightricks/LTX-Video-0.9.5",
    "v2v": "Wan-AI/Wan2.1-T2V-1.3B-diffusers",
}

#: For each refiner, the model_index.json ``_class_name``s it takes and the diffusers class each is loaded as
#: (a text-to-video folder holds the same components as its video-to-video or conditioned twin).
PIPELINE_CLASSES = {
    "wan-vace": {"WanVACEPipeline": "WanVACEPipeline"},
    "ltx": {"LTXConditionPipeline": "LTXConditionPipeline", "LTXPipeline": "LTXConditionPipeline",
            "LTXImageToVideoPipeline": "LTXConditionPipeline"},
    "v2v": {"WanVideoToVideoPipeline": "WanVideoToVideoPipeline", "WanPipeline": "WanVideoToVideoPipeline",
            "CogVideoXVideoToVideoPipeline": "CogVideoXVideoToVideoPipeline",
            "CogVideoXPipeline": "CogVideoXVideoToVideoPipeline"},
}


def refiner_for_class(class_name: str) -> str | None:
    """The refiner that takes a folder holding ``class_name``, or None."""
    return next((kind for kind, classes in PIPELINE_CLASSES.items() if class_name in classes), None)


def resolve_device_dtype(config: DiffusionConfig) -> tuple[str, Any]:
    """``(device, torch dtype)`` for ``config``: "auto" picks CUDA when torch sees it, and bfloat16 there, float32 on
    a CPU. Raises :class:`RefinerError` when CUDA is asked for and torch does not see it."""
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise RefinerError(f"DiffusionConfig.device={device!r}, but torch {torch.__version__} sees no CUDA device "
                           f"(a CPU build of torch, or no GPU here). Use --device cpu (slow) or install a CUDA torch (docs/gpu.md).")
    name = DTYPES[config.dtype] or ("float32" if device == "cpu" else "bfloat16")
    if device == "cpu" and name != "float32":
        log.warning("dtype %s on a CPU is many times slower than float32", name)
    return device, getattr(torch, name)


def load_pipeline(kind: str, config: DiffusionConfig):
    """Load the diffusers pipeline refiner ``kind`` ("wan-vace", "ltx" or "v2v") runs, as ``config`` says.

    The class comes from the folder's model_index.json (see :data:`PIPELINE_CLASSES`); the pipeline is moved to the
    configured device (or CPU-offloaded), VAE tiling and slicing are switched on as asked, and its progress bars off.
    """
    if kind not in PIPELINE_CLASSES:
        raise RefinerError(f"load_pipeline: unknown refiner {kind!r}; expected one of {sorted(PIPELINE_CLASSES)}")
    diffusers = require("diffusers", DIFFUSION_INSTALL_HINT)
    model = config.model or DEFAULT_MODELS[kind]
    class_name = check_model_index(kind, model, read_model_index(kind, model))
    load_as = PIPELINE_CLASSES[kind][class_name]
    if load_as.startswith("Wan"):
        require("ftfy", DIFFUSION_INSTALL_HINT)  # Wan pipelines clean prompts with it
    device, dtype = resolve_device_dtype(config)
    # Wan VAEs lose detail in half precision and cost little in float32 (diffusers' Wan examples do the same).
    dtypes = {"default": dtype, "vae": _float32()} if load_as.startswith("Wan") else dtype
    try:
        pipe = getattr(diffusers, load_as).from_pretrained(model, **{_dtype_keyword(): dtypes})
    except (OSError, ValueError) as exc:
        raise RefinerError(f"{kind}: loading {model!r} as {load_as} failed: {exc}. If the folder is incomplete, "
                           f"download it again: {_download_hint(kind, model)}") from exc
    place_pipeline(pipe, config, device)
    return pipe


def place_pipeline(pipe, config: DiffusionConfig, device: str) -> None:
    """Move ``pipe`` to ``device`` (or CPU-offload it onto there) and apply the VAE memory settings."""
    if config.cpu_offload and device != "cpu":
        pipe.enable_model_cpu_offload(device=device)
    else:
        if config.cpu_offload:
            log.warning("cpu_offload is ignored on the CPU")
        pipe.to(device)
    if config.vae_tiling:
        pipe.vae.enable_tiling()
    if config.vae_slicing:
        pipe.vae.enable_slicing()
    pipe.set_progress_bar_config(disable=True)


def read_model_index(kind: str, model: str) -> dict[str, Any]:
    """The model_index.json of a local folder or hub id, with :class:`RefinerError` for every way it can be missing."""
    path = Path(model).expanduser()
    if path.exists() or not is_hub_id(model):
        if not path.is_dir():
            found = "is a file, not a folder" if path.exists() else "does not exist"
            raise RefinerError(f"{kind}: model folder {str(path)!r} {found}. Download the weights once, e.g. "
                               f"{_download_hint(kind, str(path))}, then pass that folder as the model.")
        index = path / "model_index.json"
        if not index.is_file():
            raise RefinerError(f"{kind}: {str(path)!r} has no model_index.json, so it is not a diffusers pipeline "
                               f"folder. Pass the folder a diffusers download made, e.g. "
                               f"{_download_hint(kind, str(path))}.")
        try:
            return json.loads(index.read_text())
        except json.JSONDecodeError as exc:
            raise RefinerError(f"{kind}: {index} is not valid JSON ({exc}); download the model again") from exc
    from diffusers import DiffusionPipeline

    try:  # the hub's cache first: works offline
        return dict(DiffusionPipeline.load_config(model, local_files_only=True))
    except (OSError, ValueError):
        pass
    if not hub_reachable():
        raise RefinerError(f"{kind}: there is no folder {model!r} here, so it was taken for a Hugging Face hub id; "
                           f"it is not in the local hub cache, and the hub cannot be reached from here (offline, or "
                           f"HF_HUB_OFFLINE=1). Download the weights on a machine with internet, "
                           f"{_download_hint(kind, 'FOLDER', model)}, copy FOLDER here and pass it as the model.")
    try:
        return dict(DiffusionPipeline.load_config(model))
    except (OSError, ValueError) as exc:
        raise RefinerError(f"{kind}: could not read model_index.json of hub id {model!r} ({exc}). Check the id (e.g. "
                           f"{DEFAULT_MODELS[kind]!r}), or download it elsewhere and pass the folder.") from exc


def check_model_index(kind: str, model: str, index: dict[str, Any]) -> str:
    """The ``_class_name`` of a model_index.json, checked to be one refiner ``kind`` takes."""
    class_name = index.get("_class_name")
    accepted = PIPELINE_CLASSES[kind]
    if class_name not in accepted:
        other = refiner_for_class(str(class_name))
        advice = (f"that is the {other!r} refiner's model: use that refiner, or pass a {kind} model"
                  if other else f"pass a {kind} model, e.g. {DEFAULT_MODELS[kind]!r}")
        raise RefinerError(f"{kind}: {model!r} holds a {class_name} (model_index.json _class_name), but the {kind} "
                           f"refiner takes {' or '.join(sorted(accepted))}; {advice}.")
    if index.get("transformer_2") not in (None, [None, None]):
        raise RefinerError(f"{kind}: {model!r} is a two-expert {class_name} (Wan 2.2 A14B, transformer_2); the {kind} "
                           f"refiner runs single-transformer models such as {DEFAULT_MODELS[kind]!r}.")
    return class_name


def is_hub_id(model: str) -> bool:
    """Whether ``model`` reads as a hub id (``owner/name``) rather than a path."""
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", model)) and not model.startswith(("./", "../"))


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (False at once when HF_HUB_OFFLINE is set)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def _download_hint(kind: str, folder: str, model: str | None = None) -> str:
    return f"`hf download {model or DEFAULT_MODELS[kind]} --local-dir {folder}`"


def _float32():
    import torch

    return torch.float32


def _dtype_keyword() -> str:
    """diffusers renamed from_pretrained's ``torch_dtype`` to ``dtype`` (0.36); use whichever this one takes."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"

"""Colour management: named colourspaces, and conversions between them through OpenColorIO's ACES config.

reshoot's frames (ingested footage, guide renders, the refined shot) are display-referred sRGB: the space
:data:`SRGB`, ``"sRGB Encoded Rec.709 (sRGB)"`` in the config. Colour is managed at the two edges only:

- **ingest** converts footage in another space (a camera log such as S-Log3, LogC or V-Log, scene-linear
  plates) to sRGB as it extracts the frames (:func:`footage_to_srgb`). There is no tone mapping: scene-linear
  values above 1.0 (diffuse white) and colours outside the Rec.709 gamut clip;
- **export** converts the sRGB frames to the EXR's space, ACEScg by default (:func:`convert`); PNGs stay sRGB
  and movies Rec.709 video.

Names are those of OpenColorIO's built-in ACES studio config :data:`CONFIG_NAME` (nothing to download) or
any of their aliases, in any case, and ``"sRGB"``. The OpenColorIO objects stay inside this module: callers
pass names and numpy arrays.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any, Sequence

import numpy as np

from reshoot._deps import require

#: The built-in OpenColorIO config whose names reshoot uses (OpenColorIO >= 2.4 ships it). A fixed version,
#: so the same names give the same numbers whatever newer configs a later OpenColorIO adds.
CONFIG_NAME = "studio-config-v2.2.0_aces-v1.3_ocio-v2.4"
_INSTALL = "pip install 'opencolorio>=2.4'"

SRGB = "sRGB Encoded Rec.709 (sRGB)"  #: reshoot's frames: sRGB-encoded, Rec.709 primaries, D65
LINEAR_REC709 = "Linear Rec.709 (sRGB)"  #: scene-linear, Rec.709 primaries, D65
ACESCG = "ACEScg"  #: scene-linear, ACES AP1 primaries: the VFX working space
ACES2065_1 = "ACES2065-1"  #: scene-linear, ACES AP0 primaries: ACES interchange and archive (SMPTE ST 2065-1)
_SHORT_NAMES = {"srgb": SRGB}  # reshoot's own, beside the config's aliases

#: The spaces an EXR may be written in, by the names ``--exr-colourspace`` takes. ``"sRGB"`` (the frames as
#: given, not linear) is for the library only: compositors take an EXR's values as linear light.
EXR_COLOURSPACES = {"ACEScg": ACESCG, "ACES2065-1": ACES2065_1, "lin_rec709": LINEAR_REC709, "sRGB": SRGB}

#: The ACES white point (the chromaticity of equal R, G and B in ACES2065-1 and ACEScg), CIE xy.
ACES_WHITE_XY = (0.32168, 0.33767)
#: OpenEXR ``chromaticities`` (red, green, blue, white; CIE xy) of each EXR space: AP1 and AP0 from SMPTE
#: ST 2065-1 and S-2014-004, Rec.709 from ITU-R BT.709.
EXR_CHROMATICITIES = {
    ACESCG: (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, *ACES_WHITE_XY),
    ACES2065_1: (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.0770, *ACES_WHITE_XY),
    LINEAR_REC709: (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
    SRGB: (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290),
}


class ColourError(ValueError):
    """A colourspace name that the config does not hold, or one that cannot be used where it was given."""


# ---- names --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _config() -> Any:
    OCIO = require("PyOpenColorIO", _INSTALL)
    return OCIO.Config.CreateFromBuiltinConfig(CONFIG_NAME)


def colourspace_name(name: str, what: str = "colourspace") -> str:
    """The config's own name for ``name`` (a colourspace name or alias, any case, or ``"sRGB"``).

    ``what`` names the value in the error (``"--colourspace"``, ``"camera 'B'"``) when ``name`` is not one; the
    error lists the names there are and the closest ones.
    """
    return _lookup(name, what, _config_names())


def footage_colourspace(name: str, what: str = "colourspace") -> str:
    """:func:`colourspace_name` for footage: a scene-referred space (camera log, linear, sRGB, Rec.709 video),
    not a display or data space, which have no single way into the scene."""
    canonical = _lookup(name, what, footage_colourspaces())
    if canonical not in footage_colourspaces():
        raise ColourError(f"{what}: {name!r} ({canonical}) is a display or data space, not one footage is recorded "
                          f"in; give the camera's encoding, one of: {', '.join(map(repr, footage_colourspaces()))}")
    return canonical


def _lookup(name: str, what: str, listed: Sequence[str]) -> str:
    text = str(name).strip()
    if text.lower() in _SHORT_NAMES:
        return _SHORT_NAMES[text.lower()]
    space = _config().getColorSpace(text) if text else None
    if space is None:
        raise ColourError(f"{what}: {name!r} is not a colourspace of OpenColorIO's {CONFIG_NAME}"
                          f"{_did_you_mean(text, _all_names())}. The names are: {', '.join(map(repr, listed))} "
                          "(or an alias of one)")
    return space.getName()


@functools.lru_cache(maxsize=1)
def footage_colourspaces() -> tuple[str, ...]:
    """The names footage may be in: the config's scene-referred colourspaces, less its data space ("Raw")."""
    OCIO = require("PyOpenColorIO", _INSTALL)
    return tuple(cs.getName() for cs in _config().getColorSpaces()
                 if cs.getReferenceSpaceType() == OCIO.REFERENCE_SPACE_SCENE and not cs.isData())


def _config_names() -> list[str]:
    return list(_config().getColorSpaceNames())


def _all_names() -> dict[str, str]:
    """Every name and alias, lower case, to the colourspace's own name."""
    names = {"srgb": SRGB}
    for space in _config().getColorSpaces():
        names.update({n.lower(): space.getName() for n in (space.getName(), *space.getAliases())})
    return names


def _did_you_mean(text: str, names: dict[str, str]) -> str:
    close = difflib.get_close_matches(text.lower(), list(names), n=6, cutoff=0.5)
    suggestions = list(dict.fromkeys(names[c] for c in close))[:3]
    return f" (did you mean {' or '.join(map(repr, suggestions))}?)" if suggestions else ""


def describe() -> dict[str, str]:
    """What converts colours here, for manifests: the config's name and OpenColorIO's version."""
    OCIO = require("PyOpenColorIO", _INSTALL)
    return {"config": CONFIG_NAME, "opencolorio": OCIO.__version__}


# ---- conversions --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _processor(source: str, target: str) -> Any:
    OCIO = require("PyOpenColorIO", _INSTALL)
    processor = _config().getProcessor(source, target)  # lossless: no fast approximations of pow, log, exp
    return processor.getOptimizedCPUProcessor(OCIO.BIT_DEPTH_F32, OCIO.BIT_DEPTH_F32, OCIO.OPTIMIZATION_LOSSLESS)


def convert(rgb: np.ndarray, source: str, target: str) -> np.ndarray:  # [..., 3] float32
    """``rgb`` ``[..., 3]`` (an image ``[H, W, 3]``, or ``[N, 3]``) from colourspace ``source`` to ``target``
    through OpenColorIO's processor between them; a new float32 array, not clipped."""
    array = np.asarray(rgb)
    if array.ndim == 0 or array.shape[-1] != 3:
        raise ValueError(f"convert: expected RGB values of shape [..., 3] such as [H, W, 3], got {list(array.shape)}")
    out = np.array(array, dtype=np.float32, order="C")  # a copy: OpenColorIO converts in place
    processor = _processor(colourspace_name(source, "source"), colourspace_name(target, "target"))
    if not processor.isNoOp() and out.size:
        processor.applyRGB(out)
    return out


def footage_to_srgb(frame: np.ndarray, colourspace: str, *, srgb_encoded: bool = False) -> np.ndarray:
    """A decoded footage frame ``[H, W, 3]`` uint8, code values in ``colourspace``, as reshoot's sRGB frame
    (uint8, rounded). Values outside [0, 1] after conversion clip: no tone mapping.

    ``srgb_encoded``: the frame holds the sRGB encoding of the space's values, as reshoot reads an EXR (its
    values clipped to [0, 1] and sRGB-encoded); that encoding is undone first. The two cases that are already
    sRGB (sRGB footage; an EXR of linear Rec.709) give the frame back unchanged, bit for bit.
    """
    space = colourspace_name(colourspace) if colourspace not in (SRGB, LINEAR_REC709) else colourspace
    if (space, srgb_encoded) in ((SRGB, False), (LINEAR_REC709, True)):
        return frame
    values = np.asarray(frame, dtype=np.float32) / 255.0
    if srgb_encoded:
        values = convert(values, SRGB, LINEAR_REC709)  # the sRGB EOTF, undoing the reader's encoding
    return np.round(np.clip(convert(values, space, SRGB), 0.0, 1.0) * 255.0).astype(np.uint8)


# ---- OpenEXR ------------------------------------------------------------------------------------


#: ``--exr-compression`` names, and OpenEXR's: zip and piz are lossless, dwab is lossy on R, G and B.
EXR_COMPRESSIONS = {"zip": "ZIP_COMPRESSION", "piz": "PIZ_COMPRESSION", "dwab": "DWAB_COMPRESSION",
                    "none": "NO_COMPRESSION"}


def exr_settings(colourspace: str, compression: str, aces_container: bool = False,
                 what: str = "EXR") -> tuple[str, str]:
    """The config's name of an EXR colourspace (a key of :data:`EXR_COLOURSPACES`) and OpenEXR's name of the
    compression (a key of :data:`EXR_COMPRESSIONS`), checked; an ACES container is ACES2065-1, uncompressed."""
    if colourspace not in EXR_COLOURSPACES:
        raise ColourError(f"{what}: colourspace {colourspace!r} is not one reshoot writes an EXR in; use one of "
                          f"{list(EXR_COLOURSPACES)}")
    if compression not in EXR_COMPRESSIONS:
        raise ColourError(f"{what}: compression {compression!r} is not one of {list(EXR_COMPRESSIONS)}")
    if aces_container and (colourspace != "ACES2065-1" or compression != "none"):
        raise ColourError(f"{what}: an ACES container file (SMPTE ST 2065-4) is ACES2065-1 and uncompressed; got "
                          f"colourspace {colourspace!r} and compression {compression!r}")
    return EXR_COLOURSPACES[colourspace], EXR_COMPRESSIONS[compression]


def exr_colour_attributes(colourspace: str, aces_container: bool = False) -> dict[str, Any]:
    """OpenEXR header attributes that name an EXR's colourspace (one of :data:`EXR_COLOURSPACES`).

    ``chromaticities`` (the standard attribute every reader knows), ``oiio:ColorSpace`` (OpenImageIO's, read
    by OIIO-based tools) and reshoot's ``reshoot/colorspace`` hold the config's name; ``reshoot/colour`` says
    in words what was done. With ``aces_container`` (ACES2065-1 only): ``acesImageContainerFlag`` = 1 and
    ``adoptedNeutral`` = the ACES white, as SMPTE ST 2065-4 asks.
    """
    space = EXR_COLOURSPACES.get(colourspace, colourspace)
    if space not in EXR_CHROMATICITIES:
        raise ColourError(f"EXR colourspace {colourspace!r} is not one reshoot writes; use one of "
                          f"{list(EXR_COLOURSPACES)}")
    done = ("reshoot's display-referred sRGB values, as given (not linear)" if space == SRGB else
            f"scene-linear: reshoot's display-referred sRGB values ({SRGB}) converted to {space} by OpenColorIO "
            f"({CONFIG_NAME}); no tone mapping")
    attributes = {"chromaticities": EXR_CHROMATICITIES[space], "oiio:ColorSpace": space,
                  "reshoot/colorspace": space, "reshoot/colour": done}
    if aces_container:
        if space != ACES2065_1:
            raise ColourError(f"an ACES container file (SMPTE ST 2065-4) holds ACES2065-1, not {space}")
        attributes.update({"acesImageContainerFlag": 1, "adoptedNeutral": np.array(ACES_WHITE_XY, np.float32)})
    return attributes


def without_type_attribute(exr: bytes, chunk_count: int) -> bytes:
    """A single-part scanline EXR without its ``type`` attribute, the offset table moved to match.

    OpenEXR's Python binding always writes ``type`` (OpenEXR 2's attribute for multi-part and deep files);
    SMPTE ST 2065-4 fixes the ACES container as the OpenEXR 1.x layout, which has none. ``chunk_count`` is the
    number of entries in the offset table (the height, for an uncompressed file: one scan line a chunk).
    """
    position, cut = 8, None  # after the magic number and version field
    while exr[position] != 0:  # attributes: name\0 type\0 int32 size, value
        name_end = exr.index(b"\0", position)
        type_end = exr.index(b"\0", name_end + 1)
        end = type_end + 5 + int.from_bytes(exr[type_end + 1:type_end + 5], "little")
        if exr[position:name_end] == b"type":
            cut = (position, end)
        position = end
    if cut is None:
        return exr
    table_start, shift = position + 1, cut[1] - cut[0]
    table_end = table_start + 8 * chunk_count
    offsets = np.frombuffer(exr[table_start:table_end], dtype="<u8") - np.uint64(shift)
    return exr[:cut[0]] + exr[cut[1]:table_start] + offsets.astype("<u8").tobytes() + exr[table_end:]

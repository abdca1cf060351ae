"""The refiners: from guide frames to a coherent shot (classical, diffusion). See :mod:`reshoot.refine.base` for the
interface; the refine stage that runs them is :mod:`reshoot.stages.refine`."""

from reshoot.refine.base import Progress, RefineInputs, RefineResult, Refiner

__all__ = ["Progress", "RefineInputs", "RefineResult", "Refiner"]

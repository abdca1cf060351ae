"""Refinement: from guide frames to a coherent shot. See :mod:`reshoot.refine.base` for the interface."""

from reshoot.refine.base import Progress, RefineInputs, RefineResult, Refiner

__all__ = ["Progress", "RefineInputs", "RefineResult", "Refiner"]

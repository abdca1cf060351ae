"""reshoot: recover a shot nobody filmed from the footage of the cameras that were there.

Quick start::

    import reshoot
    shoot = reshoot.make_sample_shoot("reshoot-sample")          # a synthetic multi-camera shoot
    cameras = shoot.cameras                                      # reshoot.Cameras, with ground truth
    pixels, depth = cameras.project(0, [[0.0, 0.0, 0.0]])        # where the set's centre lands in cam0
    ws = reshoot.Workspace("my-shoot")                            # stages write folders + manifests here
"""

import os as _os

# OpenMP threads that spin-wait make torch 10-30x slower when another process shares the cores (measured on
# 2-core machines): let them sleep. Read once, when torch first loads, so set it before any torch import.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Load Pillow and OpenCV before anything can import pycolmap: see reshoot._deps.LOAD_FIRST.
import cv2 as _cv2  # noqa: F401
import PIL.Image as _pil_image  # noqa: F401

from reshoot._deps import MissingDependencyError
from reshoot._version import __version__
from reshoot.camera_path import CameraPath, PathError, Timeline
from reshoot.cameras import Cameras, look_at
from reshoot.evaluation.evaluate import EvalConfig, run_eval
from reshoot.footage import CameraSource, FootageError, probe_source
from reshoot.pipeline.demo import DemoResult, run_demo
from reshoot.pipeline.job import JobConfig, JobResult, load_job_config, run_job
from reshoot.sample import SampleConfig, SampleShoot, load_sample_shoot, make_sample_shoot
from reshoot.stages.export import ExportConfig, ExportError, run_export
from reshoot.stages.guide import GuideConfig, GuideError, run_guide
from reshoot.stages.ingest import IngestConfig, run_ingest
from reshoot.stages.path import PathConfig, run_path
from reshoot.stages.reconstruct import ReconstructConfig, ReconstructError, load_scene, run_reconstruct
from reshoot.stages.refine import RefineConfig, RefineError, run_refine
from reshoot.stages.register import RegisterConfig, RegistrationError, read_frame_poses, run_register
from reshoot.sync import SyncError
from reshoot.workspace import STAGE_DESCRIPTIONS, STAGES, StageContext, StageError, StageResult, Workspace

#: Errors that mean "the user asked for something that cannot be done as asked"; the CLI prints them
#: without a traceback.
ReshootError = (StageError, MissingDependencyError, RegistrationError, ReconstructError, GuideError, ExportError,
                RefineError, PathError)

__all__ = [
    "__version__",
    "CameraSource", "Cameras", "DemoResult", "FootageError", "IngestConfig", "ReconstructConfig", "ReconstructError",
    "RegisterConfig", "RegistrationError",
    "SyncError", "MissingDependencyError", "ReshootError", "STAGES", "STAGE_DESCRIPTIONS",
    "SampleConfig", "SampleShoot", "StageContext", "StageError", "StageResult", "Workspace",
    "load_sample_shoot", "look_at", "make_sample_shoot", "probe_source", "read_frame_poses", "run_demo", "run_ingest", "run_register",
    "load_scene", "run_reconstruct", "PathConfig", "run_path", "GuideConfig", "GuideError", "run_guide",
    "ExportConfig", "ExportError", "run_export", "JobConfig", "JobResult", "load_job_config", "run_job", "EvalConfig", "run_eval", "RefineConfig", "RefineError", "run_refine", "CameraPath", "Timeline", "PathError",
]

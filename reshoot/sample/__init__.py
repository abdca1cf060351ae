"""The built-in synthetic shoot: a textured set, a moving actor, set cameras and a held-out overhead camera."""

from reshoot.sample.shoot import PRESETS, SampleConfig, SampleShoot, load_sample_shoot, make_sample_shoot

__all__ = ["PRESETS", "SampleConfig", "SampleShoot", "load_sample_shoot", "make_sample_shoot"]

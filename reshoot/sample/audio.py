"""The sample's sound: one world soundtrack (room tone, a slate clap, footsteps), heard by every camera.

Each camera records the world sound from its own start time, at its own sample rate and gain, with its
own microphone noise. Sound travel time is not modelled (as with a shared wireless feed): the known
start offsets are then exactly what audio sync must recover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The world soundtrack's sample rate; cameras resample from it.
WORLD_RATE_HZ = 96_000


@dataclass(frozen=True)
class WorldSound:
    """A world soundtrack over ``[start_s, start_s + len(samples) / WORLD_RATE_HZ)`` in world seconds."""

    start_s: float
    samples: np.ndarray  # [S] float64, peak about 1

    def record(self, start_s: float, duration_s: float, rate_hz: int, gain: float, noise_db: float,
               rng: np.random.Generator) -> np.ndarray:
        """What a camera that starts at world time ``start_s`` records, as int16 mono.  # [S']"""
        count = int(round(duration_s * rate_hz))
        times = start_s + np.arange(count) / rate_hz
        position = (times - self.start_s) * WORLD_RATE_HZ
        if position[0] < 0 or position[-1] > len(self.samples) - 1:
            raise ValueError(f"recording [{start_s:.3f}, {start_s + duration_s:.3f}] s lies outside the world sound")
        signal = gain * np.interp(position, np.arange(len(self.samples)), self.samples)
        signal += 10 ** (noise_db / 20) * rng.standard_normal(count)
        return (np.clip(signal, -1, 1) * 32767).astype(np.int16)


def make_world_sound(start_s: float, end_s: float, clap_s: float, footsteps_s: list[float],
                     rng: np.random.Generator) -> WorldSound:
    """Room tone over the whole interval, a slate clap at ``clap_s``, soft thumps at ``footsteps_s``."""
    count = int(np.ceil((end_s - start_s) * WORLD_RATE_HZ)) + 1
    t = np.arange(count) / WORLD_RATE_HZ
    tone = _lowpass(rng.standard_normal(count), cutoff_hz=400) * 0.05  # air handling rumble
    tone += 0.01 * np.sin(2 * np.pi * 50 * t) + 0.005 * np.sin(2 * np.pi * 150 * t + 0.4)
    samples = tone
    samples += _event(t + start_s, clap_s, _clap(rng), amplitude=0.8)
    for step in footsteps_s:
        samples += _event(t + start_s, step, _thump(rng), amplitude=0.25)
    return WorldSound(start_s, samples)


def _event(times: np.ndarray, at_s: float, shape: np.ndarray, amplitude: float) -> np.ndarray:
    out = np.zeros_like(times)
    first = int(np.searchsorted(times, at_s))
    n = min(len(shape), len(times) - first)
    if n > 0:
        out[first:first + n] = amplitude * shape[:n]
    return out


def _clap(rng: np.random.Generator) -> np.ndarray:
    """A sharp broadband burst with a fast decay (two boards meeting)."""
    n = int(0.06 * WORLD_RATE_HZ)
    decay = np.exp(-np.arange(n) / (0.006 * WORLD_RATE_HZ))
    return rng.standard_normal(n) * decay / 2.5


def _thump(rng: np.random.Generator) -> np.ndarray:
    """A low, short footstep."""
    n = int(0.09 * WORLD_RATE_HZ)
    decay = np.exp(-np.arange(n) / (0.015 * WORLD_RATE_HZ))
    return _lowpass(rng.standard_normal(n), cutoff_hz=300) * decay * 4


def _lowpass(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Zero the spectrum above ``cutoff_hz`` (fine for synthesis; not a filter for analysis)."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / WORLD_RATE_HZ) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, len(x))

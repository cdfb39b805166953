"""Synthetic x-ray scattering images with 17 derived labels, and the ``synth`` stage.

Pure generator: :func:`generate_images` (NumPy or CuPy). Stage functions over a run store:
:func:`plan_synth_run`, :func:`synth_partition`, :func:`synthesize_run`. See docs/synth.md.
"""
from __future__ import annotations

from xsgpu.synth.generate import SynthBatch, generate_images
from xsgpu.synth.mix import DEFAULT_MIX, Mix
from xsgpu.synth.run import plan_synth_run, synth_partition, synthesize_run

__all__ = [
    "SynthBatch", "generate_images", "Mix", "DEFAULT_MIX", "plan_synth_run", "synth_partition", "synthesize_run",
]

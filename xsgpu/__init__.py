"""xsgpu: visual understanding of multi-attribute models of x-ray scattering images, at scale."""
from __future__ import annotations

__version__ = "0.1.0"

"""Lattice finding: FFT peaks, geometric phase, site refinement, pixel-size calibration."""

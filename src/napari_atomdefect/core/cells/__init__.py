"""Unit cells: tiles cut along the lattice, bilinear sampling, intensity normalisation."""

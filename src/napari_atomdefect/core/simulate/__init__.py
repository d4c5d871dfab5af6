"""Simulated HAADF-STEM images with known defects (ground truth)."""

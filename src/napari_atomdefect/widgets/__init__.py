"""Dock widgets (thin Qt layers over the napari-free core)."""

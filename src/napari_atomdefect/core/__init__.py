"""Napari-free core of napari-atomdefect (numpy / scipy / scikit-image; torch only in model code)."""

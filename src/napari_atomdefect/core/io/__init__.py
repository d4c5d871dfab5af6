"""Input and output: image files, the defect-table CSV schema, quick-look PNGs."""

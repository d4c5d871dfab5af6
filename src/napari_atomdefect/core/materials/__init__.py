"""Materials: the material table and the HAADF physics of atomic columns."""

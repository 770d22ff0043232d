"""Output formats: NIfTI (the only LPS -> RAS flip), NumPy, PNG previews."""

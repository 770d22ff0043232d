"""Output formats: one module per file format (``nifti.py``: NIfTI-1, the only LPS -> RAS
flip; ``npy.py``: NumPy), each declaring its writers for the registry.

Light on purpose: importing this package imports no format module. Use
:func:`clisonix_cli.formats.registry.file_writers` for the writers by ``--format`` name.
"""

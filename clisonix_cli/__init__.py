"""clisonix: DICOM folders to analysis-ready data, deterministic and fast."""

__version__ = "0.1.0"

"""DICOM room: discovery, header index, series/stack grouping, geometry, pixels, writing."""

"""The version of imaginebuild (recorded in every provenance record and manifest)."""

__version__ = "0.1.0"

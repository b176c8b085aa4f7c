"""The version of imaginebuild (recorded in every provenance record and manifest)."""

__version__ = "0.1.0"

# The action-key encoding's version (engine.keys): a key of another format never matches,
# and a remote cache records which format wrote it.
KEY_FORMAT_VERSION = 1

"""imaginebuild: a build system for generated media."""

__version__ = "0.1.0"

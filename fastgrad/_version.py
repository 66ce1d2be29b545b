"""The single place the version is written (setuptools reads it from here)."""
__version__ = "0.1.0"

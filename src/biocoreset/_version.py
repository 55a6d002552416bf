"""The library version, importable without importing the rest of :mod:`biocoreset`."""

__version__ = "0.1.0"

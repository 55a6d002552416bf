"""Sequence data: readers, validation, deterministic masking."""

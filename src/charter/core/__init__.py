"""Shared helpers every stage builds on, and nothing else: errors, file input and atomic output,
the clock, seeds, resumable run directories, digests and TOML inputs. ``core`` imports no other
Charter package (tests/test_architecture.py holds it to that)."""

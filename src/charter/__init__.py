"""Charter: one written constitution -> an aligned, verifiable and governed open-weight model."""

__version__ = "0.1.0"

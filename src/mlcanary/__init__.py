"""mlcanary: train, version, serve and watch tabular models."""

__version__ = "0.1.0"

"""Watching served models: the prediction log, feedback, windows, detectors, performance."""

"""Serving: Open Inference Protocol v2 messages, validation at the edge, runtimes and the app."""

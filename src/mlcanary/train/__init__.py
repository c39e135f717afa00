"""Fit and evaluate a model from a table: read, infer roles, cross-validate, report."""

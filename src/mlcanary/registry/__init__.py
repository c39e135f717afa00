"""Model versions and aliases over MLflow, and the reference profile each version carries."""

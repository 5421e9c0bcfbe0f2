"""Metric scripts in the layout `evaluate.load(path)` expects (one folder per metric, named like its script),
so the usual metrics work offline; `_sklearn` holds what they share."""

"""Reproducing the paper's tables and figures: studies, per-run summaries, the results page."""

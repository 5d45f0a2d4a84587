"""Evaluation: pure metrics and the evaluate stage."""

"""Collation of token sequences into typed batches, and datamodules."""

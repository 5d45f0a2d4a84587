"""The only package that touches Hydra and DictConfig."""

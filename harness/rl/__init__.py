"""Rollouts (generation and log-probabilities) and the RL math around them."""

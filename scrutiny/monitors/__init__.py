"""Monitors: fairness, quality, drift and performance over the payload and feedback records."""

"""Fairness (bias detection): disparate impact of a model's outcomes between a monitored and a
reference group of each protected attribute (OpenScale contract §7.1)."""

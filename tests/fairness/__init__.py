"""Fairness monitor tests."""

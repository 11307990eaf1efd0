"""Builders and data shared by the tests, one module per topic."""

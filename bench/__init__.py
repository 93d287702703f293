"""Benchmarks: python -m bench runs them all; each module runs alone too."""

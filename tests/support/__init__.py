"""Helpers the tests share: infrastructure fixtures live in conftest.py, these are plain functions."""

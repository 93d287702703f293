"""Audit: the append-only, hash-chained log of every event, and what operators read from it."""

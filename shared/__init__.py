"""Paraaf's cross-service library: event models, settings, logging, broker
topology and database helpers. Infrastructure only; no business rules."""

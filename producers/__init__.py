"""Ingest: venue adapters (one module per venue), connection management, validation, simulator, replay."""

"""API keys and the principals they stand for (docs/adrs/013-api-keys.md)."""

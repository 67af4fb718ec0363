"""Tools for working on Forge itself (not shipped in any service)."""

"""Forge's PostgreSQL schema (SQLAlchemy models), engines, repositories and migrations CLI."""

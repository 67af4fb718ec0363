"""Logging, request IDs and metrics shared by the api and the worker."""

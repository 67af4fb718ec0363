"""Test support shared by Forge's test suites; never imported by running services."""

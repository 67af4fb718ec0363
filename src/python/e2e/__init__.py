"""End-to-end acceptance tests: Forge over HTTP, with every process real."""

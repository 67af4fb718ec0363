"""The api's routers: operational endpoints at the root, the versioned API under /v1."""

"""Response and error bodies of the api, as documented in its OpenAPI spec."""

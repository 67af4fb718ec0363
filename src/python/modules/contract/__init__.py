"""The /v1 API's request, response and error bodies: one source for the api, which serves them
(docs/openapi/openapi.v1.json is generated from them), and for the client, which parses them.
Depends on pydantic only, so the client carries no server code."""

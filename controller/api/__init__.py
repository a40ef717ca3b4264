"""The HTTP API (v1): FastAPI app, token roles, one router per resource."""

"""digitgen inference service (FastAPI)."""

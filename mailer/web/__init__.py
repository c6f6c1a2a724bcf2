"""The subscriber-facing web app (FastAPI, server-rendered)."""

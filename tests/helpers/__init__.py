"""Reusable test helpers (real local servers, not mocks)."""

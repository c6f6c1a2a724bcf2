"""Operator questions and tools: why, stats, health, preview, demo."""

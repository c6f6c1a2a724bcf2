"""Subscribers: manage, sign up and confirm, import and export."""

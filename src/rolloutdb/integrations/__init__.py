"""Integrations with other RL tools; each is an optional extra that only uses the public API."""

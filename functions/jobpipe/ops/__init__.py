"""Operator tooling: what `jobpipe dlq` and `scripts/` run against a stack."""

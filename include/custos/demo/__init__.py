"""Synthetic customers for demos, tests and benchmarks (never real people)."""

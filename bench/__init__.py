"""Benchmark suite: cache strategies for concurrent uv jobs measured side by side (`python -m bench`)."""

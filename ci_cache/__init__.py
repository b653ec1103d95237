"""ci-cache: per-job, crash-proof package caches for concurrent CI jobs on one agent."""

__version__ = "0.1.0"

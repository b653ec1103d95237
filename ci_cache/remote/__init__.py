"""The fleet tier: one warm cache for every agent, content-addressed on object storage."""

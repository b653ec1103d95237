"""Scripts the lab's Windows python.exe runs under Wine (standard library and ci_cache only)."""

"""`python -m ci_cache`."""

from ci_cache.cli import entry

entry()

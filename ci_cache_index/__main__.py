"""Entry point of ``python -m ci_cache_index``."""

import sys

from ci_cache_index.cli import main

sys.exit(main())

"""Write the named environment variables (missing ones as null) to a JSON file: envdump.py OUT NAME..."""

from __future__ import annotations

import json
import os
import sys

if __name__ == "__main__":
    out, names = sys.argv[1], sys.argv[2:]
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({name: os.environ.get(name) for name in names}, fh)

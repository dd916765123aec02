"""``python -m singer_core.data prepare ...`` (see singer_core/data/cli.py)."""

import sys

from singer_core.data.cli import main

if __name__ == "__main__":
    sys.exit(main())

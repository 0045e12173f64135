"""Compare the live database with ``sql/``; exit 0 when they match, 1 on drift.

    python validate_schema.py --config lightbulb.yaml

Same as ``lightbulb validate-schema``.
"""

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate-schema", *sys.argv[1:]]))

"""Create Lightbulb's database, tables and views, and sync the config tables.

    python bootstrap.py --config lightbulb.yaml [--grants]

Same as ``lightbulb bootstrap``; kept at the top level where operators expect it.
"""

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main(["bootstrap", *sys.argv[1:]]))

"""``python -m akool_async``: the ``akool-async`` command line."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())

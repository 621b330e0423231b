"""``python -m mmscel.cli``: the command line."""

import sys

from mmscel.cli import main

sys.exit(main())

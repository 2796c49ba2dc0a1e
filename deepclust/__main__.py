"""``python -m deepclust`` is the ``deepclust`` command."""

import sys

from deepclust.cli import main

sys.exit(main())

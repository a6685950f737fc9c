"""``python -m accel`` runs the command line."""

import sys

from accel.cli import main

sys.exit(main())

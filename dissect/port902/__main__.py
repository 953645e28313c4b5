"""``python -m dissect.port902 ...`` runs the ``dissect902`` command."""

import sys

from .cli.main import main

sys.exit(main())

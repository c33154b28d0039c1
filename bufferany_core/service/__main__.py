"""`python -m bufferany_core.service` is `bufferany-server`."""

import sys

from bufferany_core.service.cli import main

sys.exit(main())

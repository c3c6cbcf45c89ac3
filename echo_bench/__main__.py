"""`python -m echo_bench`."""

import sys

from echo_bench.cli import main

sys.exit(main())

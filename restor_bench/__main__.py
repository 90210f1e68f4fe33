import sys

from restor_bench.cli import main

sys.exit(main())

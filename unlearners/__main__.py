import sys

from unlearners.cli import main

sys.exit(main())

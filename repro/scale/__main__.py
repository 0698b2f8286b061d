import sys

from repro.scale.cli import main

sys.exit(main())

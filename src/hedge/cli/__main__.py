import sys

from hedge.cli import main

sys.exit(main())

import sys

from llmos.cli import main

sys.exit(main())

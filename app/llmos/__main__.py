import sys

from llmos.cli import main

# The guard matters: ingestion's worker processes are spawned, and spawn imports __main__.
if __name__ == "__main__":
    sys.exit(main())

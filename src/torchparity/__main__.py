import sys

from torchparity.cli import main

if __name__ == "__main__":
    sys.exit(main())

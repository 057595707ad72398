import sys

from synartifact.cli import main

sys.exit(main())

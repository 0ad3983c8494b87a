"""`python -m mrgen_nnunet ...` (used by `accelerate launch -m mrgen_nnunet`)."""

import sys

from mrgen_nnunet.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

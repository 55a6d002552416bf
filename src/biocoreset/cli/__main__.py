"""``python -m biocoreset.cli`` (as ``torchrun ... -m biocoreset.cli``) runs the ``biocoreset`` command."""

import sys

from biocoreset.cli import main

if __name__ == "__main__":
    sys.exit(main())

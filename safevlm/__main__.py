"""`python -m safevlm`: the same CLI as the `safevlm` script."""

import sys

from safevlm.cli import main

sys.exit(main())

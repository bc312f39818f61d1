"""`python -m medvqa.cli`: the same as the `medvqa` command."""
import sys

from . import main

sys.exit(main())

"""`python -m gradient_doctor ...`: the `gradient-doctor` command, for an environment whose scripts are not on PATH.

    $ python -m gradient_doctor demo
"""

import sys

from .cli import main

sys.exit(main())

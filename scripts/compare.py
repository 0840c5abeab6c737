"""Compare two evaluation folders: ``python scripts/compare.py RUN_A RUN_B [--json PATH]``.

Per benchmark, on the items both runs scored validly: the SRCC and PLCC differences (A
minus B) with paired bootstrap 95% intervals and p-values; see
``preresq.evaluation.compare``. The table goes to stdout as markdown.
"""

import sys

from preresq.cli import compare_main

if __name__ == "__main__":
    sys.exit(compare_main())

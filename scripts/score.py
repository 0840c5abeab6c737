"""Score image or video files: ``python scripts/score.py photo.jpg clip.mp4 [--model PATH] [--json]``.

The same as the ``preresq-score`` entry point; see ``preresq.evaluation.score``.
"""

import sys

from preresq.evaluation.score import main

if __name__ == "__main__":
    sys.exit(main())

"""Write a checkpoint's model card: ``python scripts/model_card.py CHECKPOINT --results RUN_DIR [RUN_DIR ...]``.

``CHECKPOINT/README.md`` gets Hugging Face metadata, how the checkpoint was trained, the
prompt to ask it and the SRCC/PLCC of each evaluation folder (``scripts/eval.py``
``output_dir``) as ``model-index`` entries; see ``preresq.model_card``. A README.md the
script did not write is replaced only with ``--force``. Upload the folder with the Hub's
own command: ``hf upload USER/NAME CHECKPOINT .`` (docs/metric.md).
"""

import sys

from preresq.model_card import main

if __name__ == "__main__":
    sys.exit(main())

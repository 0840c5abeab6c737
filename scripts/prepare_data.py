"""Write a checked manifest for a benchmark card, a training set, or an official label file.

Examples:
    python scripts/prepare_data.py --benchmark koniq10k --output data/manifests/koniq10k.jsonl
    python scripts/prepare_data.py --benchmark tid2013 --source authors \
        --media-root /data/tid2013/distorted_images --output data/manifests/tid2013.jsonl
    python scripts/prepare_data.py --labels /data/spaq/scores.xlsx --reader spaq_xlsx \
        --name spaq --modality image --media-root /data/spaq/TestImage --output spaq.jsonl

Every file is opened; all bad ones are listed with their label-file lines and nothing is
written unless --drop-bad. The logic lives in preresq.data.prepare.
"""

from __future__ import annotations

import sys

from preresq.data.prepare import main

if __name__ == "__main__":
    sys.exit(main())

"""How a command ends on a user's error: a message naming the culprit, exit status 2.

Below the command-line edges (``preresq.cli``, ``scripts/*.py``) and the data tools that have
their own ``main`` (``preresq.data.prepare``), so none of them imports another's entry point.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

USER_ERROR_STATUS = 2  # missing data or weights: the user acts, nothing to debug


@contextmanager
def stop_on_user_errors(paths=None) -> Iterator[None]:
    """Missing data (``DataMissingError``) or weights (``ModelNotFoundError``), or a training
    run whose memory plan does not fit the GPU (``MemoryPlanError``), or a checkpoint that
    found the disk full (``DiskFullError``), end the command with
    the error's message on stderr and exit status 2, without a traceback.

    Used inside every command's main function: Hydra's wrapper prints the traceback of
    any exception that leaves the task function, but lets ``SystemExit`` through.
    ``paths``: the run's ``paths`` group, which the message names the data's place by.
    """
    from preresq.data.missing import DataMissingError
    from preresq.models import ModelNotFoundError
    from preresq.training.checkpoints import DiskFullError
    from preresq.training.memory_plan import MemoryPlanError

    try:
        yield
    except DataMissingError as err:
        message = err.describe(paths if paths is not None else err.paths)
    except (ModelNotFoundError, MemoryPlanError, DiskFullError) as err:
        message = str(err)
    else:
        return
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(USER_ERROR_STATUS)

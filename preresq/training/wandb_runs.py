"""One wandb run per stage, grouped under the run name.

transformers' ``WandbCallback`` starts a wandb run at the first stage's ``train()`` and
never finishes it: the next stage logged into the same run, its step restarting at 0 over
the first stage's curves and its config overwriting the first's. Each stage now gets its
own run, named ``<run_name>/<stage>`` in the group ``<run_name>`` (wandb's group view shows
the stages side by side), started before the stage trains (the callback then logs into it
and adds the stage's config) and finished when the stage ends.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

log = logging.getLogger("preresq.train")


def stage_run_settings(run_name: str, stage: str) -> dict:
    """``wandb.init`` arguments of one stage's run."""
    return {"project": os.environ.get("WANDB_PROJECT", "preresq"), "group": str(run_name),
            "name": f"{run_name}/{stage}", "job_type": str(stage)}


@contextmanager
def stage_run(report_to, run_name: str, stage: str, main_process: bool):
    """A wandb run for the stage trained inside the block (rank 0, when wandb is reported to)."""
    if not main_process or "wandb" not in (report_to or []):
        yield None
        return
    import wandb

    if wandb.run is not None:  # left open by the caller: it would take this stage's logs
        log.warning("finishing the open wandb run %r: stage %r logs to a run of its own",
                    wandb.run.name, stage)
        wandb.run.finish()
    run = wandb.init(**stage_run_settings(run_name, stage))
    failed = True
    try:
        yield run
        failed = False
    finally:
        run.finish(exit_code=1 if failed else 0)

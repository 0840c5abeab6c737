"""The process group of a training run: one process without a launcher, DeepSpeed joining it.

``python scripts/train.py ...`` with DeepSpeed: a one-process group when no launcher made one.

torchrun (or accelerate/deepspeed launch) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT. Without them DeepSpeed's ``init_distributed`` looks for an MPI launcher and
dies with ``ModuleNotFoundError: mpi4py``. A plain ``python`` run is one process: its
group is rank 0 of 1 on this host, at a free port (two one-process runs on one machine must
not meet at the same port). accelerate then joins that group (gloo on CPU, NCCL on CUDA)
exactly as under ``torchrun --nproc_per_node=1``.

DeepSpeed keeps its own handle on the group (``deepspeed.comm``) and sizes its batch check
by it. transformers makes that handle on GPUs; a CPU run (``use_cpu``, tests) never did,
so every ZeRO-3 process believed it was alone and refused the batch (``16 != 8 * 1 * 1``)
under ``torchrun --nproc_per_node=2``: ``join_deepspeed`` hands it the group accelerate made.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import MutableMapping

log = logging.getLogger("preresq.train")

LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Whether a launcher (torchrun, accelerate launch, deepspeed) started this process."""
    return "RANK" in environ or "WORLD_SIZE" in environ or "LOCAL_RANK" in environ


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def one_process_env(environ: MutableMapping[str, str], port: int) -> dict[str, str]:
    """The launcher variables a one-process group needs that ``environ`` lacks."""
    defaults = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return {k: v for k, v in defaults.items() if k not in environ}


def setup_one_process(deepspeed: bool, gpus: int, environ: MutableMapping[str, str] = os.environ) -> dict:
    """Prepare a run started without a launcher; return the variables that were set.

    With DeepSpeed the run becomes a one-process group (see the module doc). With several
    CUDA GPUs the run says how to use them: one process uses one GPU.
    """
    if launched(environ):
        return {}
    if gpus > 1:
        log.warning("%d CUDA GPUs are visible but this run is one process on one GPU; "
                    "`torchrun --nproc_per_node=%d scripts/train.py ...` uses them all", gpus, gpus)
    if not deepspeed:
        return {}
    added = one_process_env(environ, free_port())
    environ.update(added)
    log.info("no launcher: DeepSpeed runs as a one-process group (%s)",
             " ".join(f"{k}={v}" for k, v in added.items()))
    return added


def join_deepspeed() -> None:
    """Point ``deepspeed.comm`` at the torch process group this run already joined."""
    import torch.distributed
    from deepspeed import comm

    if torch.distributed.is_initialized() and not comm.is_initialized():
        comm.init_distributed(dist_backend=torch.distributed.get_backend(), auto_mpi_discovery=False)

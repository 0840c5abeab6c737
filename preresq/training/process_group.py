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

One process means one GPU. On a machine with several, transformers sets ``n_gpu`` to the
device count and TRL refuses DataParallel (``n_gpu > 1``), after the model has loaded: a
plain ``python`` run is pinned to the first visible GPU (``CUDA_VISIBLE_DEVICES``) before
CUDA initialises, and says so.
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


def first_visible_device(environ: MutableMapping[str, str]) -> str:
    """The first GPU this process may see: the head of ``CUDA_VISIBLE_DEVICES``, else ``0``."""
    visible = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[0] if visible else "0"


def setup_one_process(deepspeed: bool, gpus: int, environ: MutableMapping[str, str] = os.environ,
                      cuda_initialized: bool = False) -> dict:
    """Prepare a run started without a launcher; return the variables that were set.

    With DeepSpeed the run becomes a one-process group (see the module doc). With several
    CUDA GPUs it is pinned to the first visible one, which only works before CUDA
    initialises (``cuda_initialized``: then it stops with the way out).
    """
    if launched(environ):
        return {}
    added = {}
    if gpus > 1:
        if cuda_initialized:
            raise RuntimeError(
                f"{gpus} CUDA GPUs are visible to a one-process run and CUDA is already initialised, "
                f"so it cannot be pinned to one: set CUDA_VISIBLE_DEVICES=0 (one GPU) or start it "
                f"with `torchrun --nproc_per_node={gpus} scripts/train.py ...` (all of them)")
        added["CUDA_VISIBLE_DEVICES"] = first_visible_device(environ)
        log.warning("%d CUDA GPUs are visible but this run is one process: it uses GPU %s only "
                    "(CUDA_VISIBLE_DEVICES=%s); `torchrun --nproc_per_node=%d scripts/train.py ...` "
                    "uses them all", gpus, added["CUDA_VISIBLE_DEVICES"],
                    added["CUDA_VISIBLE_DEVICES"], gpus)
    if deepspeed:
        group = one_process_env(environ, free_port())
        log.info("no launcher: DeepSpeed runs as a one-process group (%s)",
                 " ".join(f"{k}={v}" for k, v in group.items()))
        added.update(group)
    environ.update(added)
    return added


def join_deepspeed() -> None:
    """Point ``deepspeed.comm`` at the torch process group this run already joined."""
    import torch.distributed
    from deepspeed import comm

    if torch.distributed.is_initialized() and not comm.is_initialized():
        comm.init_distributed(dist_backend=torch.distributed.get_backend(), auto_mpi_discovery=False)

"""Which DeepSpeed config file a training config names (``trainer.deepspeed``).

Below both ``train`` (which hands the file to ``GRPOConfig``) and ``memory_plan`` (which
reads its ZeRO stage): neither imports the other for it.
"""

from __future__ import annotations

from pathlib import Path

from preresq.paths import CONFIG_DIR


def deepspeed_config_path(cfg) -> str | None:
    """The DeepSpeed JSON of ``cfg.trainer.deepspeed`` (a name in ``configs/deepspeed`` or a
    path to a ``.json``); None without DeepSpeed."""
    ds = cfg.trainer.get("deepspeed")
    if not ds:
        return None
    path = Path(ds) if str(ds).endswith(".json") else CONFIG_DIR / "deepspeed" / f"{ds}.json"
    if not path.is_file():
        raise FileNotFoundError(f"trainer.deepspeed={ds!r}: no such DeepSpeed config {path}")
    return str(path)

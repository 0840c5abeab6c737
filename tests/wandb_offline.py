"""Read what a wandb offline run wrote: its ``run-<id>.wandb`` transaction log.

wandb 0.31 keeps an offline run's name, group, config, history and summary only in that
file (``files/`` gets no config.yaml or summary before a sync), and no longer ships a
Python reader. The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version),
then 32 KiB blocks of records, each a 7-byte header (crc32, length, type: 1 whole, 2 first,
3 middle, 4 last part) and a serialized ``wandb_internal.Record``.
"""

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def records(path):
    """The ``Record`` protos of one ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    pos, parts = HEADER, []
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if length == 0 and kind == 0:  # zero padding at the end of a block
            pos += BLOCK - pos % BLOCK
            continue
        parts.append(data[pos + HEADER:pos + HEADER + length])
        pos += HEADER + length
        if kind in (1, 4):  # whole record, or its last part
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def read_run(path) -> dict:
    """One offline run: name, group, job type, final config, history rows and summary."""
    run = {"name": None, "group": None, "job_type": None, "config": {}, "history": [], "summary": {}}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(name=record.run.display_name, group=record.run.run_group,
                       job_type=record.run.job_type)
            run["config"].update(_items(record.run.config.update))
        elif kind == "config":
            run["config"].update(_items(record.config.update))
        elif kind == "history":
            run["history"].append(_items(record.history.item))
        elif kind == "summary":
            run["summary"].update(_items(record.summary.update))
    return run

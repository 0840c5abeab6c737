"""What produced an evaluation folder's predictions, and the refusal to mix two of them.

An output folder records its *identity* in ``identity.json``: the weights by content, the
prompt texts, the parser (answer format, number of scores), the decoding, the pixel
budgets, how image and video files become pixels (``DISPLAY_RULES`` of
``preresq.data.image`` and ``preresq.data.video_decode``), the video views (not their
thread count), the backend and, per benchmark, where its labels came from. A
later run in the same folder must have the same identity, or it stops and says what
changed and what to do; predictions are never reused silently.

Weights fingerprint: the SHA-256 of every file that decides what the model answers (the
weights, configs, tokenizer, processor and chat-template files at the top of the folder;
training state such as ``optimizer.pt`` is left out), combined into one digest. Hashing
15 GB takes about a minute, once: digests are cached in ``<paths.cache_dir>/fingerprints.json``
keyed by the file's absolute path, size and modification time, so a file rewritten in
place (a retrained ``.../final``) is hashed again and an unchanged one is not. A LoRA
folder includes its base model's fingerprint when the base is a local folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from preresq.atomic_write import write_text_atomically

IDENTITY_FILE = "identity.json"
# Files of a checkpoint folder that do not change its answers (trainer state, logs).
_IGNORED = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json",
            "training_args.bin", "rng_state", "validation.json", "README.md", ".gitattributes")
_CHUNK = 1 << 24


class IdentityMismatchError(ValueError):
    """An output folder holds predictions made by another model, prompt or setting."""


# ----------------------------------------------------------------------------- weights

def _file_digest(path: Path, cache: dict) -> str:
    stat = path.stat()
    key = str(path.resolve())
    entry = cache.get(key)
    if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
        return entry["sha256"]
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": h.hexdigest()}
    return cache[key]["sha256"]


def _counted(name: str) -> bool:
    return not (name.startswith(".") or any(name.startswith(i) for i in _IGNORED))


def weights_fingerprint(folder: str | os.PathLike, cache_file: str | os.PathLike | None = None) -> dict:
    """``{"sha256": digest of the folder, "files": {name: sha256}}`` of a checkpoint folder.

    Args:
        folder: a local checkpoint folder (a hub snapshot is one too).
        cache_file: JSON file of digests already computed (see the module doc); None: no cache.
    """
    folder = Path(folder)
    cache_path = Path(cache_file) if cache_file else None
    cache = {}
    if cache_path is not None and cache_path.is_file():
        try:
            cache = json.loads(cache_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            cache = {}  # a damaged cache only costs hashing again
    files = {p.name: _file_digest(p, cache) for p in sorted(folder.iterdir())
             if p.is_file() and _counted(p.name)}
    if not files:
        raise FileNotFoundError(f"{folder} holds no model files to fingerprint")
    result = {"sha256": None, "files": files}
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if base and Path(base).is_dir():
            result["base"] = weights_fingerprint(base, cache_file)["sha256"]
    h = hashlib.sha256(json.dumps({k: v for k, v in result.items() if k != "sha256"},
                                  sort_keys=True).encode())
    result["sha256"] = h.hexdigest()
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        os.replace(tmp, cache_path)
    return result


def local_model_dir(name: str, subfolder: str | None = None) -> str:
    """The folder the weights are read from: ``name`` itself, or the hub snapshot of it.

    A hub id is downloaded (or found in the hub cache when offline) by ``huggingface_hub``,
    so the files fingerprinted are the files loaded. ``subfolder`` picks a model inside a
    repository that holds several (Q-Insight's ``score_degradation``).
    """
    from preresq.models import ModelNotFoundError

    path = Path(name).expanduser()
    if not path.is_dir():
        if path.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1:
            return name  # a missing local path: loading reports it with its remedies
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(name, allow_patterns=[f"{subfolder}/*"] if subfolder else None))
        except Exception as err:  # offline, unknown id, no access: one message for all
            raise ModelNotFoundError(
                f"Model not available: {name!r} is not a local folder and could not be fetched "
                f"from the Hugging Face hub ({type(err).__name__}). Download it once "
                f"(`huggingface-cli download {name} --local-dir /models/<name>`) and set "
                f"model.name_or_path=/models/<name>.") from None
    if subfolder:
        path = path / subfolder
    return str(path)


# ----------------------------------------------------------------------------- identity

def labels_identity(card) -> dict:
    """Where a benchmark's labels come from, by content: the label file's digest and how
    it is read (reader, split, score range, source)."""
    labels = Path(card.labels)
    if labels.is_file():
        digest = _file_digest(labels, {})
    else:  # a folder of label files (PIPAL): names and sizes
        listing = sorted((str(p.relative_to(labels)), p.stat().st_size)
                         for p in labels.rglob("*") if p.is_file())
        digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    fields = {k: getattr(card, k, None) for k in ("source", "reader", "split", "higher_is_better")}
    score_range = getattr(card, "score_range", None)
    fields["score_range"] = list(score_range) if score_range else None
    manifest = getattr(card, "manifest", None)
    if manifest and Path(manifest).is_file():
        fields["manifest_sha256"] = _file_digest(Path(manifest), {})
    return {"labels_sha256": digest, **fields}


def short_fingerprint(identity: Mapping) -> str | None:
    """8 hex digits of the weights' digest, for folder names; None without weights."""
    weights = identity.get("model", {}).get("weights")
    return weights["sha256"][:8] if weights else None


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, Mapping) and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 70 else text[:67] + "..."


def differences(old: Mapping, new: Mapping) -> list[str]:
    """One line per setting that differs, ``key: old -> new`` (dotted keys)."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(a.keys() | b.keys()):
        if a.get(key) != b.get(key):
            lines.append(f"{key}: {_short(a.get(key))} -> {_short(b.get(key))}")
    return lines


def check_identity(folder: str | os.PathLike, identity: dict, overwrite: bool = False) -> None:
    """Record ``identity`` in ``folder``, or stop if the folder was made by another one.

    The common part (model, prompts, decoding...) must be equal; each benchmark's part
    (its labels) must be equal for the benchmarks both runs have, and new benchmarks are
    added. With ``overwrite`` the folder's earlier predictions and results are removed
    first (the user asked for it). A folder with predictions but no identity file (made by
    an older version) cannot be trusted either.
    """
    folder = Path(folder)
    path = folder / IDENTITY_FILE
    remedy = (f"Use another folder (output_dir=...), or overwrite=true to delete the predictions "
              f"in {folder} and start over.")
    if overwrite and folder.is_dir():
        for name in ("predictions", "plots"):
            shutil.rmtree(folder / name, ignore_errors=True)
        for name in (IDENTITY_FILE, "setup.json", "results.json", "results.md"):
            (folder / name).unlink(missing_ok=True)
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        common_old = {k: v for k, v in old.items() if k != "benchmarks"}
        common_new = {k: v for k, v in identity.items() if k != "benchmarks"}
        lines = differences(common_old, common_new)
        shared = old.get("benchmarks", {}).keys() & identity.get("benchmarks", {}).keys()
        for name in sorted(shared):
            lines += differences({f"benchmarks.{name}": old["benchmarks"][name]},
                                 {f"benchmarks.{name}": identity["benchmarks"][name]})
        if lines:
            raise IdentityMismatchError(
                f"{folder} holds predictions made with another setup; what changed:\n  "
                + "\n  ".join(lines) + f"\n{remedy}")
        merged = dict(identity, benchmarks={**old.get("benchmarks", {}), **identity.get("benchmarks", {})})
    else:
        if (folder / "predictions").is_dir() and any((folder / "predictions").iterdir()):
            raise IdentityMismatchError(
                f"{folder} holds predictions but no {IDENTITY_FILE}: they were made by an older "
                f"version that did not record what produced them, so they cannot be reused. {remedy}")
        merged = identity
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(merged, indent=2, sort_keys=True) + "\n")

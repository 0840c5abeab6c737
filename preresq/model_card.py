"""A checkpoint's ``README.md``: a Hugging Face model card with how it was trained and its results.

``python scripts/model_card.py CHECKPOINT --results RUN_DIR [RUN_DIR ...]`` writes
``CHECKPOINT/README.md``; training writes the same card, without results, into each
stage's ``final/`` (``write_training_card``). The card holds:

* metadata the Hub reads (``huggingface_hub.ModelCardData``): ``base_model`` (when the
  run started from a hub id), ``library_name: transformers``, ``pipeline_tag:
  image-text-to-text``, ``license``, ``datasets`` (the training set's name), ``tags``;
* how it was trained, from the ``run_info.json`` and ``config.yaml`` that training writes
  into the checkpoint (or, for ``best/`` and ``checkpoint-N``, into its stage folder, and
  the run folder above it): experiment, stages, reward preset and weights, steps;
* the prompt to ask it (the words, the answer format, and the ``preresq`` call);
* the results of each evaluation folder (``scripts/eval.py``'s ``results.json``) as
  ``model-index`` entries (``EvalResult``: SRCC and PLCC per benchmark, the values of
  ``results.json`` unrounded; an undefined correlation is left out of the metadata and
  shown as such in the table).

An evaluation folder is only taken when its predictions were made by these weights (the
``identity`` fingerprint in ``results.json`` equals the checkpoint's), so a card never
shows another model's numbers. A ``README.md`` this module did not write (TRL's generic
card, a hand-written one) is never replaced unless ``force``; cards it wrote carry
``MARKER`` and are rewritten freely.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
MARKER = "<!-- written by preresq.model_card: rewritten by scripts/model_card.py -->"
PIPELINE_TAG = "image-text-to-text"
# The weights' licence follows the base model's; the code's is Apache-2.0.
BASE_LICENSES = {"Qwen/Qwen2.5-VL-7B-Instruct": "apache-2.0",
                 "Qwen/Qwen2.5-VL-3B-Instruct": "other"}
DEFAULT_LICENSE = "apache-2.0"
METRICS = (("srcc", "SRCC"), ("plcc", "PLCC"))
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class CardExistsError(FileExistsError):
    """The checkpoint has a README.md this module did not write."""


class ResultsMismatchError(ValueError):
    """An evaluation folder's predictions were not made by the checkpoint's weights."""


# ----------------------------------------------------------------------------- training

@dataclass
class Training:
    """How a checkpoint was trained, as the card tells it."""

    run_name: str | None = None
    experiment: str | None = None
    stage: str | None = None
    stages: list[str] = field(default_factory=list)
    steps: int | None = None
    base_model: str | None = None
    data: str | None = None
    reward: dict = field(default_factory=dict)
    prompt: dict = field(default_factory=dict)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _steps(checkpoint: Path, info: Mapping) -> int | None:
    """The optimizer steps behind these weights: final/'s run_info, best/'s validation.json,
    a TRL checkpoint's trainer_state.json."""
    for value in (info.get("global_step"), _json(checkpoint / "validation.json").get("step"),
                  _json(checkpoint / "trainer_state.json").get("global_step")):
        if value is not None:
            return int(value)
    return None


def training_of(checkpoint: str | os.PathLike) -> Training | None:
    """What ``run_info.json`` and ``config.yaml`` say about the checkpoint: its own files
    (a stage's ``final/``), else its stage folder's (``best/``, ``checkpoint-N``), and the
    run folder's above them. None for weights not trained here."""
    from omegaconf import OmegaConf

    checkpoint = Path(checkpoint)
    near = [checkpoint, checkpoint.parent]
    config = next((d / "config.yaml" for d in near if (d / "run_info.json").is_file()
                   and (d / "config.yaml").is_file()), None)
    if config is None:
        return None
    stage = next((i for i in (_json(d / "run_info.json") for d in near) if "stage" in i), {})
    run = next((i for i in (_json(d / "run_info.json") for d in (checkpoint.parent, checkpoint.parent.parent))
                if "stages" in i), {})
    cfg = OmegaConf.to_container(OmegaConf.load(config))
    argv = run.get("argv") or stage.get("argv") or []
    experiment = next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("experiment=")), None)
    base = run.get("initial") or stage.get("init") or (cfg.get("model") or {}).get("name_or_path")
    reward = cfg.get("reward") or {}
    return Training(
        run_name=cfg.get("run_name"), experiment=experiment, stage=stage.get("stage"),
        stages=list(run.get("stages") or ([stage["stage"]] if stage.get("stage") else [])),
        steps=_steps(checkpoint, _json(checkpoint / "run_info.json")),
        base_model=str(base) if base else None,
        data=(cfg.get("data") or {}).get("name"),
        reward={"preset": reward.get("preset"), "params": reward.get("params") or {}},
        prompt=cfg.get("prompt") or {})


# ----------------------------------------------------------------------------- results

def _benchmark_card(name: str) -> dict:
    """The benchmark's card (``configs/benchmark/<name>.yaml``) unresolved; {} if none."""
    from omegaconf import OmegaConf

    from preresq.paths import CONFIG_DIR

    path = CONFIG_DIR / "benchmark" / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else {}


def eval_results(results: Mapping) -> list:
    """``EvalResult``s of one ``results.json``: SRCC and PLCC of each benchmark evaluated,
    as written there (a skipped benchmark and an undefined correlation are left out)."""
    from huggingface_hub import EvalResult

    out = []
    for name, bench in (results.get("benchmarks") or {}).items():
        if "skipped" in bench:
            continue
        card = _benchmark_card(name)
        kind = card.get("modality", "image")
        for key, pretty in METRICS:
            if bench.get(key) is None:
                continue
            out.append(EvalResult(
                task_type=f"{kind}-quality-assessment", task_name=f"{kind.capitalize()} quality assessment",
                dataset_type=name, dataset_name=card.get("description") or name,
                dataset_split=card.get("split"), metric_type=key, metric_name=pretty,
                metric_value=bench[key]))
    return out


def read_results(run_dir: str | os.PathLike, checkpoint: str | os.PathLike,
                 fingerprint: Mapping | None = None) -> dict:
    """``RUN_DIR/results.json``, after checking that these weights made its predictions.

    Raises:
        FileNotFoundError: no results.json (not an evaluation folder, or not finished).
        ResultsMismatchError: made by other weights, or by a stand-in predictor.
    """
    from preresq.evaluation.identity import weights_fingerprint

    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --results takes folders written by "
                                f"scripts/eval.py (output_dir=...)")
    results = json.loads(path.read_text(encoding="utf-8"))
    theirs = ((results.get("identity") or {}).get("model") or {}).get("weights")
    if not theirs:
        raise ResultsMismatchError(f"{run_dir}: its predictions came from a stand-in predictor (no "
                                   f"weights fingerprint in results.json), not from {checkpoint}")
    mine = fingerprint or weights_fingerprint(checkpoint)
    if theirs.get("sha256") != mine.get("sha256"):
        raise ResultsMismatchError(
            f"{run_dir} was evaluated with other weights (sha256 {str(theirs.get('sha256'))[:12]}, "
            f"model_path {results.get('model_path')}) than {checkpoint} "
            f"(sha256 {str(mine.get('sha256'))[:12]}); evaluate this checkpoint and pass that folder")
    return results


# ----------------------------------------------------------------------------- the card

def _fmt(value) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _results_table(runs: Sequence[tuple[str, Mapping]]) -> list[str]:
    lines = ["| benchmark | SRCC | PLCC | SRCC 95% CI | items (valid) | evaluation folder |",
             "| --- | --- | --- | --- | --- | --- |"]
    for source, results in runs:
        for name, bench in (results.get("benchmarks") or {}).items():
            if "skipped" in bench:
                lines.append(f"| {name} | skipped: {bench['skipped']} | | | | {source} |")
                continue
            ci = bench.get("srcc_ci")
            ci = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci and None not in ci else ""
            lines.append(f"| {name} | {_fmt(bench.get('srcc'))} | {_fmt(bench.get('plcc'))} | {ci} | "
                         f"{bench.get('n')} ({bench.get('n_valid')}) | {source} |")
    return lines


def _asked(prompt: Mapping) -> dict:
    """Per modality, how it is asked: ``{"name", "text", "system", "num_scores",
    "answer_format", "add_vision_id"}``, from a prompt config (``templates``: evaluation
    asks with the first) or an evaluation identity's prompt (the words themselves)."""
    from preresq.prompts import load_template

    out = {}
    for modality in ("image", "video"):
        m = prompt.get(modality)
        if not m:
            continue
        if "templates" in m:
            templates = m["templates"]
            name = templates if isinstance(templates, str) else list(templates)[0]
            text, system = load_template(name), load_template(m["system"]) if m.get("system") else None
        else:  # identity: "template" and "system" hold the words
            name, text, system = None, m["template"], m.get("system")
        out[modality] = {"name": name, "text": text.strip(), "system": system,
                         "num_scores": int(m["num_scores"]),
                         "answer_format": m.get("answer_format", "tagged"),
                         "add_vision_id": bool(m.get("add_vision_id", False))}
    return out


def _prompt_preset(asked: Mapping) -> str | None:
    """The name of the ``configs/prompt`` preset that asks as ``asked`` does, if any."""
    from omegaconf import OmegaConf

    from preresq.paths import CONFIG_DIR

    def key(a: Mapping) -> dict:  # the modalities asked here (an evaluation may ask one)
        return {m: {k: v for k, v in a[m].items() if k != "name"} for m in asked if m in a}

    for path in sorted((CONFIG_DIR / "prompt").glob("*.yaml")):
        if key(_asked(OmegaConf.to_container(OmegaConf.load(path)))) == key(asked):
            return path.stem
    return None


def _prompt_section(prompt: Mapping, where: str) -> list[str]:
    asked = _asked(prompt)
    preset = _prompt_preset(asked)
    lines = ["## How to ask it", ""]
    for modality, m in asked.items():
        named = f"template `{m['name']}`, " if m["name"] else ""
        lines += [f"{modality.capitalize()}s are asked ({named}{m['num_scores']} score(s), answer "
                  f"format `{m['answer_format']}`):", "", "```text", m["text"], "```", ""]
    option = f', prompt="{preset}"' if preset else ""
    lines += ["With PreResQ installed (`pip install .` in its repository):", "",
              "```python", "import preresq, torch",
              f'metric = preresq.create_metric("{where}"{option})  # pyiqa-style: higher is better, 1-5',
              "scores = metric(torch.rand(4, 3, 224, 224))   # (N, 3, H, W) in [0, 1] -> (N,), NaN: no score",
              "```", "", "or `preresq-score photo.jpg --model " + where
              + (f" prompt={preset}" if preset else "") + "`.", ""]
    return lines


def _hub_id(name: str | None) -> str | None:
    """``name`` when it is a hub id (``owner/name``, not a local folder), else None."""
    return name if name and _HUB_ID.match(name) and not Path(name).exists() else None


def _public(name: str | None) -> str:
    """A hub id as it is; a local folder by its name only (a card is published)."""
    return "-" if not name else _hub_id(name) or f"a local folder, `{Path(name).name}`"


def _training_section(t: Training | None) -> list[str]:
    if t is None:
        return ["## Training", "", "No `run_info.json` beside these weights: not trained by "
                "PreResQ's `scripts/train.py`, or copied without it.", ""]
    params = ", ".join(f"{k}={v}" for k, v in sorted((t.reward.get("params") or {}).items()))
    rows = [("experiment", t.experiment or "-"), ("run name", t.run_name or "-"),
            ("stages", " -> ".join(t.stages) or "-"), ("this stage", t.stage or "-"),
            ("optimizer steps (this stage)", t.steps if t.steps is not None else "-"),
            ("reward preset", f"`{t.reward.get('preset')}`" + (f" ({params})" if params else "")),
            ("training data", t.data or "-"), ("initial weights", _public(t.base_model))]
    return ["## Training", "", "GRPO with PreResQ's trainer and reward, as `run_info.json` "
            "and `config.yaml` record it:", "",
            "| | |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in rows], ""]


def build_card(checkpoint: str | os.PathLike, runs: Sequence[tuple[str, Mapping]] = (),
               name: str | None = None, license: str | None = None, repo_id: str | None = None):
    """The ``huggingface_hub.ModelCard`` of a checkpoint with these ``(folder, results)``.

    Args:
        name: the model's name in the metadata (default: ``<run_name>-<stage>``, or the
            folder's name).
        license: the weights' licence (default: the base model's, else apache-2.0).
        repo_id: the hub id the card's usage example loads (default: the local folder).
    """
    from huggingface_hub import ModelCard, ModelCardData

    checkpoint = Path(checkpoint)
    training = training_of(checkpoint)
    base = _hub_id(training.base_model) if training else None
    name = name or (f"{training.run_name}-{training.stage}" if training and training.run_name
                    and training.stage else checkpoint.resolve().name)
    # The prompt it was trained with, else the one its evaluation asked with.
    prompt = training.prompt if training and training.prompt else \
        next(((res.get("identity") or {}).get("prompt") or {} for _, res in runs), {})
    video = bool(prompt.get("video"))
    tags = ["preresq", "image-quality-assessment", "grpo", "qwen2_5_vl"] + \
        (["video-quality-assessment"] if video else [])
    results = [r for _, res in runs for r in eval_results(res)]
    data = ModelCardData(
        model_name=name, base_model=base, library_name="transformers", pipeline_tag=PIPELINE_TAG,
        license=license or BASE_LICENSES.get(base or "", DEFAULT_LICENSE),
        datasets=[training.data] if training and training.data else None, tags=tags,
        eval_results=results or None)
    where = repo_id or str(checkpoint)
    how = " trained with PreResQ's GRPO" if training else ""
    body = [f"# {name}", "", f"A visual quality rater (Qwen2.5-VL{how}): it rates images"
            + (" and videos" if video else "") + " on a 1-5 scale, higher is better.", ""]
    if prompt:
        body += _prompt_section(prompt, where)
    body += _training_section(training)
    body += ["## Results", ""]
    if runs:
        body += ["Spearman (SRCC) and Pearson (PLCC) correlation with the benchmarks' mean "
                 "opinion scores, over the items with a valid answer (`scripts/eval.py`; the "
                 "values of each folder's `results.json`).", "", *_results_table(runs), ""]
    else:
        body += ["Not evaluated yet: `python scripts/eval.py model.name_or_path=" + str(checkpoint)
                 + " output_dir=RUN`, then `python scripts/model_card.py " + str(checkpoint)
                 + " --results RUN` adds the results here.", ""]
    body += [MARKER, ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def ours(path: str | os.PathLike) -> bool:
    """Whether the card at ``path`` was written by this module."""
    return MARKER in Path(path).read_text(encoding="utf-8", errors="replace")


def _describe(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    if "generated_from_trainer" in text:
        return "a card generated by the trainer (TRL's generic README)"
    return "a card written by someone else"


def write_card(checkpoint: str | os.PathLike, runs: Sequence[str | os.PathLike] = (),
               force: bool = False, **options) -> Path:
    """Write ``CHECKPOINT/README.md`` (see the module docstring); returns its path.

    Raises:
        CardExistsError: a README.md this module did not write is there and not ``force``.
        FileNotFoundError, ResultsMismatchError: an evaluation folder that cannot be used.
    """
    from preresq.evaluation.identity import weights_fingerprint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"{checkpoint} is not a checkpoint folder")
    path = checkpoint / CARD_FILE
    if path.is_file() and not force and not ours(path):
        raise CardExistsError(f"{path} is {_describe(path)}; it is left as it is. Pass --force "
                              f"(force=True) to replace it.")
    fingerprint = None
    if runs:  # the digests evaluation cached (paths.cache_dir): a 7B checkpoint is not hashed twice
        from preresq.config import compose

        cache = Path(compose("eval").paths.cache_dir) / "fingerprints.json"
        fingerprint = weights_fingerprint(checkpoint, cache)
    # Named by the folder's name alone: a card is published, local paths stay here.
    loaded = [(Path(run).name, read_results(run, checkpoint, fingerprint)) for run in runs]
    card = build_card(checkpoint, loaded, **options)
    tmp = path.with_name(f".{CARD_FILE}.tmp")
    card.save(tmp)
    os.replace(tmp, path)
    return path


def write_training_card(final_dir: str | os.PathLike) -> Path | None:
    """The card of a stage's ``final/`` (no results yet), written at the end of training;
    a README.md already there that this module did not write is kept (and said so)."""
    try:
        return write_card(final_dir)
    except CardExistsError as err:
        log.warning("model card not written: %s", err)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/model_card.py``: the command line; returns the exit status."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="model_card.py", description="Write CHECKPOINT/README.md: a Hugging Face model card "
        "with how the checkpoint was trained, the prompt to ask it and its evaluation results.")
    parser.add_argument("checkpoint", help="a checkpoint folder (a stage's final/, best/, checkpoint-N)")
    parser.add_argument("--results", nargs="+", default=[], metavar="RUN_DIR",
                        help="evaluation folders of scripts/eval.py made with these weights")
    parser.add_argument("--force", action="store_true",
                        help="replace a README.md that this script did not write")
    parser.add_argument("--name", help="the model's name in the card (default: <run_name>-<stage>)")
    parser.add_argument("--license", help="the weights' licence (default: the base model's, else apache-2.0)")
    parser.add_argument("--repo-id", help="the hub id the card's usage example loads (default: the folder)")
    args = parser.parse_args(argv)
    try:
        path = write_card(args.checkpoint, args.results, force=args.force, name=args.name,
                          license=args.license, repo_id=args.repo_id)
    except (CardExistsError, ResultsMismatchError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


__all__ = ["write_card", "write_training_card", "build_card", "eval_results", "read_results",
           "training_of", "ours", "main", "Training", "CardExistsError", "ResultsMismatchError",
           "MARKER"]

"""``make demo`` / ``make demo-video``: GRPO teaches the tiny random Qwen2.5-VL to rank image
(or video) quality on a CPU.

Steps (config: ``configs/experiment/demo.yaml``, or ``demo_video.yaml`` for clips, whose
views are ``configs/video`` settings: a mosaic of frames and local frames; docs/video_demo.md):

1. build the demo image set (white noise at 4 levels on scikit-image photo crops) or the
   demo clip set (``preresq.data.demo_video``);
2. score the untrained tiny policy on the held-out test split (``init``);
3. a format warm-up: a few supervised steps on answers whose digits are *random*, never
   derived from the score, so the policy learns to answer with one digit and nothing
   about quality (``before``);
4. GRPO with the project's trainer and a registered reward, validating on the val split
   every N steps and keeping the best weights by val SRCC;
5. score the kept weights on the test split (``after``), write ``summary.json`` and a PNG
   of the reward and the validation SRCC over training steps;
6. run the project's evaluation (``evaluate()``, as ``scripts/eval.py suite=iqa_demo``
   would) on the kept weights: the standard results folder ``<output_dir>/eval/``
   (predictions, results.json/md, scatter plot) with greedy answers.

The test split is the benchmark card ``demo.eval_card``'s (``iqa_demo``, ``vqa_demo``); the
demo stops before training when the card's demo-set parameters differ from the experiment's
``data.reader_args``. Test SRCC/PLCC are also given per distortion kind (``by_kind``: the
clips or images of that kind with the clean ones of the same sources).

Scores are read as ``demo.readout`` says: ``expected`` (the mean digit under the first
answer token's distribution, ``HFPredictor.expected_scores``) or ``greedy`` (the parsed
greedy answer); with ``expected`` the greedy answers' SRCC/PLCC are reported beside it.

A tiny random model on a toy set: a check that advantages, masks, reward wiring and parsing
work together, not a result about image quality assessment.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from preresq.data.benchmarks import card_from_config, load_card, read_benchmark
from preresq.data.rows import item_images
from preresq.evaluation.report import no_nan
from preresq.prompts import build_messages, pick_template

log = logging.getLogger("preresq.demo")


def _video_cfg(cfg: DictConfig, card) -> dict | None:
    if card.modality != "video":
        return None
    return OmegaConf.to_container(cfg.video, resolve=True) if cfg.get("video") is not None else None


def _images(cfg, card, record):
    return item_images(record, card.media_root, int(cfg.model.min_pixels), int(cfg.model.max_pixels),
                       _video_cfg(cfg, card))


def format_warmup(cfg: DictConfig, model_path: str, records, card, out_dir: Path) -> Path:
    """Supervised steps on random-digit answers: teaches the answer layout, not quality."""
    from preresq.models import load_model, load_processor

    prompt = cfg.prompt[card.modality]
    if int(prompt.num_scores) != 1 or prompt.answer_format != "bare":
        raise ValueError("the demo warm-up writes one-digit bare answers; use prompt=demo_digit")
    processor = load_processor(cfg.model, path=model_path)
    model = load_model(cfg.model, path=model_path)
    model.train()
    rng = random.Random(int(cfg.seed))
    torch.manual_seed(int(cfg.seed))
    optim = torch.optim.AdamW(model.parameters(), lr=float(cfg.demo.warmup_lr))
    tok = processor.tokenizer
    batch_size = int(cfg.demo.warmup_batch_size)
    for step in range(int(cfg.demo.warmup_steps)):
        batch = rng.sample(records, min(batch_size, len(records)))
        prompts, fulls, images = [], [], []
        for i, record in enumerate(batch):
            ims = _images(cfg, card, record)
            messages = build_messages(pick_template(list(prompt.templates), i), len(ims))
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            prompts.append(text)
            fulls.append(text + str(rng.randint(1, 5)) + tok.eos_token)
            images.extend(ims)
        enc = processor(text=fulls, images=images, padding=True, padding_side="right", return_tensors="pt")
        prompt_len = processor(text=prompts, images=images, padding=True, padding_side="right",
                               return_tensors="pt")["attention_mask"].sum(1)
        labels = enc["input_ids"].clone()
        positions = torch.arange(labels.shape[1])[None, :]
        labels[(positions < prompt_len[:, None]) | (enc["attention_mask"] == 0)] = -100
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
        if step % 50 == 0:
            log.info("format warm-up step %d: loss %.3f", step, loss.item())
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def by_kind(records, predictions, readout: str) -> dict:
    """``held_out_scores`` per distortion kind (``record.extra["kind"]``): the records of
    that kind with the clean ones (level 0) of the same sources, so each kind spans every
    score. Empty when the records carry no kinds."""
    from preresq.evaluation.held_out import held_out_scores

    kinds = sorted({r.extra.get("kind") for r in records} - {None, "clean"})
    out = {}
    for kind in kinds:
        keep = [i for i, r in enumerate(records) if r.extra.get("kind") in (kind, "clean")]
        scores = held_out_scores([predictions[i] for i in keep], [records[i].score for i in keep], readout)
        out[kind] = {k: no_nan(v) for k, v in scores.items()}
    return out


def score_split(cfg: DictConfig, model_path: str, card, records, readout: str = "greedy") -> dict:
    """SRCC, PLCC and valid-answer rate of the policy at ``model_path`` on ``records``, with
    the same per distortion kind under ``by_kind``."""
    from preresq.decoding import Decoding
    from preresq.evaluation.held_out import held_out_predictions, held_out_scores
    from preresq.evaluation.hf_predictor import HFPredictor
    from preresq.evaluation.requests import ItemPrompt
    from preresq.models import load_model, load_processor

    predictor = HFPredictor(load_model(cfg.model, path=model_path),
                            load_processor(cfg.model, path=model_path),
                            Decoding(max_new_tokens=int(cfg.trainer.args.max_completion_length)))
    predictions = held_out_predictions(predictor, records, ItemPrompt.from_cfg(cfg.prompt[card.modality]),
                                       lambda record: _images(cfg, card, record), 64, readout)
    return {**held_out_scores(predictions, [r.score for r in records], readout),
            "by_kind": by_kind(records, predictions, readout)}


EVAL_CARD = "iqa_demo"  # the image demo's benchmark card (configs/benchmark/): its test split


def eval_card(cfg: DictConfig) -> str:
    """The benchmark card of the demo's test split: ``demo.eval_card`` (default iqa_demo)."""
    return str(cfg.demo.get("eval_card") or EVAL_CARD)


def check_test_card(cfg: DictConfig, card) -> None:
    """Stop when the test card describes another demo set than the one trained on."""
    trained = OmegaConf.to_container(cfg.data.reader_args, resolve=True) or {}
    if card.reader_args != trained:
        raise ValueError(
            f"the demo trains on data.reader_args={trained} but its evaluation reads "
            f"configs/benchmark/{card.name}.yaml with reader_args={card.reader_args}: the test "
            f"split would be another set. Set the same values in both (the experiment's data "
            f"config under configs/data/ and configs/benchmark/{card.name}.yaml).")


def evaluation_overrides(cfg: DictConfig, model_path: str | Path) -> list[str]:
    """``scripts/eval.py`` overrides that score ``model_path`` as the demo's last step does.

    Greedy one-digit answers (``max_new_tokens`` = the training's completion length),
    repetition penalty 1.0 as in the GRPO rollouts, the validation batch size; a video
    demo's view settings (``video_overrides``).
    """
    return [f"suite={eval_card(cfg)}", "model=tiny", "prompt=demo_digit",
            f"model.name_or_path={model_path}",
            f"max_new_tokens={int(cfg.trainer.args.max_completion_length)}",
            "decoding.repetition_penalty=1.0", f"batch_size={int(cfg.validation.batch_size)}",
            f"seed={int(cfg.seed)}", f"output_dir={Path(cfg.output_dir) / 'eval'}",
            *video_overrides(cfg)]


def video_overrides(cfg: DictConfig) -> list[str]:
    """``video.<key>=<value>`` for each view setting of a video demo that differs from
    ``configs/video/default.yaml`` (none for images), so that ``scripts/eval.py`` shows the
    clips as the demo trained on them."""
    from preresq.data.video import default_config

    if eval_card(cfg) == EVAL_CARD or cfg.get("video") is None:
        return []
    default = default_config()
    values = OmegaConf.to_container(cfg.video, resolve=True)
    return [f"video.{k}={json.dumps(v).replace(' ', '')}" for k, v in values.items()
            if k not in default or default[k] != v]


def _compose_eval(overrides: list[str]) -> DictConfig:
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside scripts/demo.py's @hydra.main: same configs/
        from hydra import compose

        return compose("eval", overrides)
    from preresq.config import compose as compose_fresh

    return compose_fresh("eval", overrides)


def evaluate_demo(cfg: DictConfig, model_path: str | Path) -> dict:
    """``evaluate()`` on ``model_path`` with the demo's own model, prompt and paths settings."""
    from preresq.evaluation import evaluate

    eval_cfg = _compose_eval(evaluation_overrides(cfg, model_path))
    # The demo's own nodes (a tiny-model or cache override on the demo's command line holds
    # here too), the checkpoint in place of the tiny model's folder.
    eval_cfg.model = OmegaConf.merge(cfg.model, {"name_or_path": str(model_path)})
    eval_cfg.prompt = cfg.prompt
    eval_cfg.paths = cfg.paths
    return evaluate(eval_cfg)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def plot_curves(stage_dir: Path, out_png: Path) -> None:
    """Mean reward (train batches) and validation SRCC over steps, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in _read_jsonl(stage_dir / "metrics.jsonl") if "reward" in m]
    val = _read_jsonl(stage_dir / "validation.jsonl")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot([m["step"] for m in metrics], [m["reward"] for m in metrics])
    a.set(xlabel="GRPO step", ylabel="mean reward", title="reward (train batches)")
    b.plot([v["step"] for v in val], [v["val/srcc"] for v in val], marker="o")
    b.set(xlabel="GRPO step", ylabel="SRCC", title="held-out SRCC (val split)", ylim=(-1, 1))
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def _fmt(x: float) -> str:
    return "  nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:5.3f}"


def run_demo(cfg: DictConfig) -> dict:
    """Run the whole demo; return the summary written to ``<output_dir>/summary.json``."""
    from preresq.models import resolve_model_path
    from preresq.training import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    start = time.time()
    out = Path(cfg.output_dir)
    train_card = card_from_config(cfg.data)
    test_card = load_card(eval_card(cfg), paths=cfg.paths)
    check_test_card(cfg, test_card)
    # The demo always starts from the untrained model: a previous run's weights and their
    # evaluation are replaced (training would refuse the finished stage folder, and the
    # evaluation would take the old predictions for the new weights').
    for stale in (out / "warmup", out / "main", out / "eval"):
        if stale.is_dir():
            log.info("replacing the previous demo run's %s", stale)
            shutil.rmtree(stale)
    out.mkdir(parents=True, exist_ok=True)
    train_records = read_benchmark(train_card)
    test_records = read_benchmark(test_card)
    log.info("demo set: %d train items, %d test items (%s)", len(train_records), len(test_records),
             test_card.media_root)

    readout = str(cfg.demo.get("readout", "greedy"))

    def score(path) -> dict:  # with readout=expected the greedy answers' SRCC comes along
        return score_split(cfg, str(path), test_card, test_records, readout)

    tiny = resolve_model_path(cfg.model, cfg.paths.cache_dir)
    init = score(tiny)
    warm = format_warmup(cfg, tiny, train_records, train_card, out / "warmup")
    before = score(warm)

    run_cfg = OmegaConf.merge(cfg, {"model": {"name_or_path": str(warm)}})
    final = train(run_cfg)
    stage = final.parent
    chosen = stage / "best" if (stage / "best").is_dir() else final
    after = score(chosen)

    png = out / "training_curves.png"
    plot_curves(stage, png)
    results = evaluate_demo(cfg, chosen)["benchmarks"][test_card.name]

    def row(result: dict) -> dict:
        return {k: no_nan(v) for k, v in result.items()}

    summary = {
        "init": row(init),
        "before": row(before),
        "after": row(after),
        "readout": readout,
        "test_items": len(test_records),
        "evaluation": {  # evaluate() on the kept weights: greedy answers, bootstrap 95% CIs
            "dir": str(out / "eval"),
            **{k: no_nan(results.get(k)) for k in ("n", "n_valid", "srcc", "plcc", "srcc_ci", "plcc_ci")},
        },
        "reward": {"preset": str(cfg.reward.preset),
                   "params": OmegaConf.to_container(cfg.reward.params, resolve=True) or {}},
        "seed": int(cfg.seed),
        "checkpoint": str(chosen),
        "seconds": round(time.time() - start, 1),
        "plot": str(png),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    greedy = readout != "greedy"
    print(f"\nheld-out demo test split ({len(test_records)} {test_card.modality}s), scores read out: {readout}")
    print("| policy | SRCC | PLCC | valid answers |" + (" SRCC of greedy answers |" if greedy else ""))
    print("| --- | --- | --- | --- |" + (" --- |" if greedy else ""))
    for name, label in (("init", "untrained"), ("before", "after format warm-up, before GRPO"),
                        ("after", "after GRPO")):
        r = summary[name]
        extra = f" {_fmt(r['srcc_greedy'])} |" if greedy else ""
        print(f"| {label} | {_fmt(r['srcc'])} | {_fmt(r['plcc'])} | {r['valid_rate']:.0%} |{extra}")
    kinds = summary["after"].get("by_kind") or {}
    if len(kinds) > 1:
        print("\nper distortion kind (its items with the clean ones), SRCC before -> after GRPO:")
        for kind, r in kinds.items():
            print(f"  {kind:14s} {_fmt(summary['before']['by_kind'][kind]['srcc'])} -> {_fmt(r['srcc'])}")
    ev = summary["evaluation"]
    print(f"\nevaluate() on the kept weights (greedy answers): SRCC {_fmt(ev['srcc'])}, "
          f"PLCC {_fmt(ev['plcc'])}, {ev['n_valid']}/{ev['n']} valid; results in {ev['dir']}")
    print(f"summary: {out / 'summary.json'}\ncurves:  {png}\n({summary['seconds']:.0f} s)")
    return summary

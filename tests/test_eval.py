"""evaluate(cfg): output contract, resuming, skipped benchmarks, unreadable media.

A deterministic fake predictor stands in for the model (tests/eval_fakes.py); the real
model path is covered by test_eval_hf.py and the slow script test.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
from eval_fakes import FakePredictor, eval_cfg
from scipy import stats

from preresq.evaluation import evaluate
from preresq.evaluation.metrics import DegenerateInputWarning


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        yield


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted run: the reference the other tests compare against."""
    out = tmp_path_factory.mktemp("full")
    fake = FakePredictor()
    results = evaluate(eval_cfg(out), predictor=fake)
    return out, results, fake


def test_output_contract(full_run):
    out, results, fake = full_run
    rows = read_rows(out / "predictions" / "iqa_demo.jsonl")
    assert len(rows) == 20 and fake.items == 20
    for row in rows:
        assert {"id", "gt", "pred", "completion"} <= row.keys()
        assert 1 <= row["gt"] <= 5
        assert row["pred"] is None or 1 <= row["pred"] <= 5
    on_disk = json.loads((out / "results.json").read_text())
    bench = on_disk["benchmarks"]["iqa_demo"]
    for key in ("n", "n_valid", "invalid_rate", "srcc", "plcc", "plcc_logistic", "krcc",
                "rmse", "srcc_ci", "plcc_ci"):
        assert key in bench
    valid = [r for r in rows if r["pred"] is not None]
    assert bench["n"] == 20 and bench["n_valid"] == len(valid) < 20  # the fake skips some
    assert bench["invalid_rate"] == pytest.approx((20 - len(valid)) / 20)
    # The numbers a reader would recompute from the predictions file.
    pred, gt = [r["pred"] for r in valid], [r["gt"] for r in valid]
    assert bench["srcc"] == pytest.approx(stats.spearmanr(pred, gt).statistic, abs=1e-12)
    assert bench["plcc"] == pytest.approx(stats.pearsonr(pred, gt).statistic, abs=1e-12)
    assert bench["krcc"] == pytest.approx(stats.kendalltau(pred, gt).statistic, abs=1e-12)
    assert bench["srcc_ci"][0] <= bench["srcc"] <= bench["srcc_ci"][1]
    assert on_disk["mean"]["srcc"] == pytest.approx(bench["srcc"])
    table = (out / "results.md").read_text()
    assert "| iqa_demo | 20 |" in table and "**mean**" in table
    assert (out / "plots" / "iqa_demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "predictions" / "partial").exists()
    assert results["benchmarks"]["iqa_demo"]["srcc"] == pytest.approx(bench["srcc"])


def test_interrupted_run_resumes_to_the_same_results(full_run, tmp_path):
    out_full, _, _ = full_run
    first = FakePredictor(stop_after=8)
    with pytest.raises(KeyboardInterrupt):
        evaluate(eval_cfg(tmp_path), predictor=first)
    partial = tmp_path / "predictions" / "partial" / "iqa_demo.rank0.jsonl"
    assert len(read_rows(partial)) == 8  # appended as made, before the interruption
    second = FakePredictor()
    evaluate(eval_cfg(tmp_path), predictor=second)
    assert second.items == 12  # finished items were not predicted again
    assert (tmp_path / "results.json").read_bytes() == (out_full / "results.json").read_bytes()
    assert (tmp_path / "predictions" / "iqa_demo.jsonl").read_bytes() == \
        (out_full / "predictions" / "iqa_demo.jsonl").read_bytes()
    third = FakePredictor()
    evaluate(eval_cfg(tmp_path), predictor=third)
    assert third.calls == 0  # a finished evaluation only recomputes the metrics


def test_truncated_predictions_file_is_completed(full_run, tmp_path):
    out_full, _, _ = full_run
    first = FakePredictor()
    evaluate(eval_cfg(tmp_path), predictor=first)
    path = tmp_path / "predictions" / "iqa_demo.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]) + lines[5][:17])  # a write cut mid-line
    again = FakePredictor()
    with pytest.warns(RuntimeWarning, match="unfinished last line"):
        evaluate(eval_cfg(tmp_path), predictor=again)
    assert again.items == 15
    assert (tmp_path / "results.json").read_bytes() == (out_full / "results.json").read_bytes()


def test_batch_size_does_not_change_results(full_run, tmp_path):
    out_full, _, _ = full_run
    evaluate(eval_cfg(tmp_path, "batch_size=7"), predictor=FakePredictor())
    assert (tmp_path / "results.json").read_bytes() == (out_full / "results.json").read_bytes()


def test_benchmark_without_media_is_skipped_with_a_reason(tmp_path):
    cfg = eval_cfg(tmp_path, "suite=iqa_demo", "benchmarks=[iqa_demo,bid]",
                   f"paths.data_root={tmp_path / 'nothing'}",
                   f"paths.labels_root={tmp_path / 'nothing'}")
    results = evaluate(cfg, predictor=FakePredictor())
    reason = results["benchmarks"]["bid"]["skipped"]
    assert "\n" not in reason and "nothing" in reason
    assert results["mean"]["n_benchmarks"] == 1
    table = (tmp_path / "results.md").read_text()
    assert "| bid | skipped: " in table


def test_unreadable_file_is_an_error_row_and_the_run_goes_on(tmp_path):
    cache = tmp_path / "cache"
    cfg = eval_cfg(tmp_path / "out", f"paths.cache_dir={cache}", "limit=6")
    from preresq.data.benchmarks import load_card, read_benchmark

    card = load_card("iqa_demo", paths=cfg.paths)
    records = read_benchmark(card)[:6]
    broken = records[2]
    (Path(card.media_root) / broken.paths[0]).write_bytes(b"not a png")
    fake = FakePredictor()
    results = evaluate(cfg, predictor=fake)
    rows = {r["id"]: r for r in read_rows(tmp_path / "out" / "predictions" / "iqa_demo.jsonl")}
    assert len(rows) == 6 and fake.items == 5
    assert rows[broken.id]["pred"] is None and broken.paths[0] in rows[broken.id]["error"]
    bench = results["benchmarks"]["iqa_demo"]
    assert bench["n_error"] == 1 and bench["n"] == 6
    # The next run tries the broken item again (and only it): still unreadable, the model
    # is not asked, the error row stays.
    retry = FakePredictor()
    evaluate(cfg, predictor=retry)
    assert retry.items == 0
    rows = {r["id"]: r for r in read_rows(tmp_path / "out" / "predictions" / "iqa_demo.jsonl")}
    assert len(rows) == 6 and "error" in rows[broken.id]


def test_self_consistency_sampling_means_the_valid_samples(tmp_path):
    cfg = eval_cfg(tmp_path, "decoding.do_sample=true", "decoding.num_samples=4", "limit=8")
    evaluate(cfg, predictor=FakePredictor(num_samples=4))
    for row in read_rows(tmp_path / "predictions" / "iqa_demo.jsonl"):
        assert len(row["completions"]) == 4 and len(row["sample_preds"]) == 4
        valid = [p for p in row["sample_preds"] if p is not None]
        if valid:
            assert row["pred"] == pytest.approx(sum(valid) / len(valid))
        else:
            assert row["pred"] is None


def test_greedy_with_several_samples_is_refused(tmp_path):
    with pytest.raises(ValueError, match="do_sample"):
        evaluate(eval_cfg(tmp_path, "decoding.num_samples=3"), predictor=FakePredictor())


def test_another_setup_in_the_same_folder_is_refused(full_run, tmp_path):
    evaluate(eval_cfg(tmp_path, "limit=4"), predictor=FakePredictor())
    with pytest.raises(ValueError, match="(?s)another setup.*prompt.image.template") as err:
        evaluate(eval_cfg(tmp_path, "limit=4", "prompt=default"), predictor=FakePredictor())
    assert "output_dir=" in str(err.value) and "overwrite=true" in str(err.value)


def test_nan_metrics_are_null_in_json(tmp_path):
    class Constant(FakePredictor):
        def generate(self, requests):
            self.items += len(requests)
            return [["3"] for _ in requests]

    results = evaluate(eval_cfg(tmp_path, "limit=6"), predictor=Constant())
    assert math.isnan(results["benchmarks"]["iqa_demo"]["srcc"])
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["benchmarks"]["iqa_demo"]["srcc"] is None
    assert "n/a" in (tmp_path / "results.md").read_text()


def test_the_closing_line_names_only_what_was_written(tmp_path, capsys):
    evaluate(eval_cfg(tmp_path / "plain", "plots=false", "limit=6"), predictor=FakePredictor())
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"predictions, results.json and results.md in {tmp_path / 'plain'}"
    assert not (tmp_path / "plain" / "plots").exists()
    evaluate(eval_cfg(tmp_path / "plotted", "limit=6"), predictor=FakePredictor())
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("predictions, results.json, results.md and plots in")
    assert (tmp_path / "plotted" / "plots" / "iqa_demo.png").is_file()

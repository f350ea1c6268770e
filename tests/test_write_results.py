"""benchmarks/write_results.py's statements about a run: the interval over seeds and what rises."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def write_results():
    sys.path.insert(0, str(BENCHMARKS))  # it imports its sibling scripts
    try:
        spec = importlib.util.spec_from_file_location("write_results", BENCHMARKS / "write_results.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def series(values: dict[int, list[float]], null: float = 0.25) -> pd.DataFrame:
    """An alignment table of one model and layer: step -> the overlap over chance of each seed."""
    rows = [{"model": "m", "seed": seed, "step": step, "layer": 2, "overlap_over_chance": value,
             "probe_transfer": value / 4, "probe_transfer_null": null}
            for step, per_seed in values.items() for seed, value in enumerate(per_seed)]
    return pd.DataFrame(rows)


def test_the_interval_over_seeds_is_the_t_interval(write_results):
    values = [1.0, 1.4, 1.1, 1.7]
    summary = write_results.seed_summary(series({0: values, 100: values}))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    row = summary.iloc[0]
    assert row["seeds"] == 4
    assert row["overlap / chance mean"] == pytest.approx(np.mean(values))
    assert (row["overlap / chance low"], row["overlap / chance high"]) == pytest.approx((low, high))


@pytest.mark.parametrize("last, verdict", [([2.0, 2.1, 1.9], "rises"), ([0.2, 0.3, 0.25], "falls"),
                                           ([1.1, 0.9, 1.3], "does not change beyond its seed intervals")])
def test_a_measure_rises_only_where_the_seed_intervals_part(write_results, last, verdict):
    lines = write_results.course(series({0: [1.0, 1.1, 0.95], 500: last}))
    overlap = next(line for line in lines if "overlap / chance" in line)
    assert f"overlap / chance: {verdict}:" in overlap, overlap
    transfer = next(line for line in lines if "probe transfer" in line)
    assert transfer.endswith("its null at step 500 is 0.250."), transfer


def test_one_run_states_the_change_without_an_interval(write_results):
    lines = write_results.course(series({0: [1.0], 500: [1.5]}))
    assert lines[0] == ("- m, layer 2, overlap / chance: changes by +0.50 (one pre-training run: no interval "
                        "over seeds): 1.00 at step 0 to 1.50 at step 500; chance is 1.")

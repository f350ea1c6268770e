"""scripts/gpu-check at tiny shapes on the CPU (what CI can run of it), checked against independent
computations: the dump against a plain forward pass of each sentence alone, the table and the
unit-cost rows against the counts and times they are made of, the probe's picks against the neurons
that carry the class."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import f_oneway
from transformers import AutoModelForCausalLM, AutoTokenizer
from workflow_runs import REPO

from xlprobe import costs
from xlprobe.gpucheck import SHAPES, measured_unit_costs, planted_splits, table_rows, write_unit_costs
from xlprobe.plan import plan

SHIPPED = costs.DATA / "unit_costs.tsv"


@pytest.fixture(scope="module")
def check(tmp_path_factory):
    """One run of the script as CI runs it: (its output folder, its work folder, the JSON report)."""
    root = tmp_path_factory.mktemp("gpu-check")
    out, work = root / "out", root / "work"
    done = subprocess.run(
        [str(REPO / "scripts" / "gpu-check"), "--device", "cpu", "--small", "--out", str(out),
         "--workdir", str(work), "--table", str(root / "docs_table.md")],
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, work, json.loads((out / "gpu_check.json").read_text()), done.stdout


def results_of(report, stage):
    return [r for r in report["results"] if r["stage"] == stage]


def table(out):
    lines = [line for line in (out / "gpu_check.md").read_text().splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0])


def test_the_float32_dump_equals_a_plain_forward_pass_of_each_sentence(check):
    _, work, report, _ = check
    (reference,) = [r for r in results_of(report, "dump") if r["dtype"] == "float32"]
    words = pd.read_csv(work / "words.tsv", sep="\t", keep_default_na=False)
    model_dir = work / "models" / "tiny" / "0"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    dumped = np.load(work / "tiny.cpu.float32.npy")
    assert dumped.shape == (len(words), SHAPES["tiny"][0]) == (reference["words"], 64)
    expected, subwords = [], 0
    for _, sentence in words.groupby("sentence_id", sort=False):
        pieces = [tokenizer(form, add_special_tokens=False)["input_ids"] for form in sentence["form"]]
        subwords += sum(map(len, pieces))
        ids = torch.tensor([[i for p in pieces for i in p]])
        with torch.no_grad():
            states = model.transformer(input_ids=ids, output_hidden_states=True).hidden_states
        layer = states[reference["layer"] - 1][0]
        ends = np.cumsum([len(p) for p in pieces])
        expected += [layer[end - len(p) : end].mean(0).numpy() for p, end in zip(pieces, ends)]
    expected = np.array(expected)
    error = np.linalg.norm(dumped - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert error.max() < 2e-3  # float16 storage
    assert reference["subwords"] == subwords


def test_the_bfloat16_dump_difference_is_the_largest_per_word(check):
    _, work, report, _ = check
    (half,) = [r for r in results_of(report, "dump") if r["dtype"] == "bfloat16"]
    a = np.load(work / "tiny.cpu.bfloat16.npy").astype(np.float64)
    b = np.load(work / "tiny.cpu.float32.npy").astype(np.float64)
    per_word = [np.linalg.norm(x - y) / np.linalg.norm(y) for x, y in zip(a, b)]
    assert half["largest_relative_difference"] == pytest.approx(max(per_word), rel=1e-9)
    assert 1e-4 < max(per_word) < 0.1  # bfloat16 keeps 8 bits: differs, but not by much


def test_the_table_has_one_line_per_measurement(check):
    out, _, report, stdout = check
    lines = table(out)
    assert lines["stage"].tolist() == ["dump", "dump", "transfer", "transfer", "similarity", "lm_loss", "probe"]
    dump = lines[lines["setting"].str.startswith("cpu bfloat16")].iloc[0]
    (half,) = [r for r in results_of(report, "dump") if r["dtype"] == "bfloat16"]
    assert f"{half['subwords'] / half['words']:.2f} subwords/word" in dump["setting"]
    assert dump["rate"].startswith(f"{half['words'] / half['seconds']:,.0f} words/s")
    assert f"{half['largest_relative_difference']:.2e}" in dump["check"]
    assert (out / "gpu_check.md").read_text() == (out.parent / "docs_table.md").read_text()
    assert not report["skipped"] and report["complete"]
    qlora = lines[lines["setting"].str.startswith("qlora")].iloc[0]
    assert (qlora["rate"], qlora["check"]) == ("skipped", "needs CUDA (device cpu)")
    assert "needs CUDA" in stdout and "planted neurons picked first: yes" in stdout


def test_lora_trains_and_its_rate_counts_its_examples(check):
    _, _, report, _ = check
    lora = next(r for r in results_of(report, "transfer") if r["method"] == "lora")
    assert lora["updates"] == lora["steps"] == 40
    assert lora["last_loss"] < lora["first_loss"] - 0.2
    assert lora["examples_per_second"] == pytest.approx(lora["steps"] * lora["batch_size"] / lora["seconds"])


def test_the_probe_picks_the_neurons_that_carry_the_class_first(check):
    _, _, report, _ = check
    (probe,) = results_of(report, "probe")
    settings = report["settings"]
    X, y = planted_splits(settings["probe_rows"], settings["probe_dim"], 4, probe["planted"], settings["seed"])["train"]
    f_statistic = np.array([f_oneway(*(X[y == c, d] for c in range(4))).statistic for d in range(X.shape[1])])
    carrying = sorted(np.argsort(-f_statistic)[:4].tolist())
    assert carrying == probe["planted"]
    assert sorted(probe["selected"][:4]) == carrying and len(probe["selected"]) == settings["k"]


def test_the_unit_costs_replace_the_measured_rows_only(check):
    out, work, report, _ = check
    written = pd.read_csv(out / "unit_costs.tsv", sep="\t", keep_default_na=False).set_index("name")
    shipped = pd.read_csv(SHIPPED, sep="\t", keep_default_na=False).set_index("name")
    measured = {"dump_cpu_gflops", "dump_cpu_words_per_second", "transfer_cpu_gflops",
                "transfer_cpu_examples_per_second"}
    assert set(written.index) == set(shipped.index)
    changed = {name for name in shipped.index if not written.loc[name].equals(shipped.loc[name])}
    assert changed == measured
    assert all(written.loc[name, "source"].endswith(f"on {report['device']}") for name in measured)
    # on a CPU every dump ran there (the float32 reference and the device's dtypes): the slowest counts
    dumps = results_of(report, "dump")
    assert {r["dtype"] for r in dumps} == {"float32", "bfloat16"}
    words = len(pd.read_csv(work / "words.tsv", sep="\t"))  # both dumps read every word (--small)
    assert [r["words"] for r in dumps] == [words, words]
    hidden = SHAPES["tiny"][0]
    # the plan's accounting: 24 hidden^2 FLOP per subword and block, layer - 1 blocks
    gflops = min(r["subwords"] * 24 * hidden**2 * (r["layer"] - 1) / r["seconds"] / 1e9 for r in dumps)
    words_per_second = min(words / r["seconds"] for r in dumps)
    assert written.loc["dump_cpu_gflops", "value"] == pytest.approx(gflops, rel=1e-5)
    assert written.loc["dump_cpu_words_per_second", "value"] == pytest.approx(words_per_second, rel=1e-5)
    assert costs.unit_costs(str(out / "unit_costs.tsv"))["dump_gpu_gflops"] == 1000  # assumed, kept


def test_the_plan_reads_measured_gpu_rates_in_place_of_the_assumed(tmp_path):
    path = tmp_path / "unit_costs.tsv"
    write_unit_costs(path, SHIPPED, [("dump_gpu_gflops", 2000.0, "GFLOP/s", "slowest of: test")], "measured on X")
    with open(path, newline="") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert rows["dump_gpu_gflops"]["source"] == "measured on X"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assumed = {r["rule"]: r for r in plan(config, costs.unit_costs(str(SHIPPED)), tmp_path)}
    measured = {r["rule"]: r for r in plan(config, costs.unit_costs(str(path)), tmp_path)}
    assert measured["dump_activations"]["gpu_hours"] == pytest.approx(assumed["dump_activations"]["gpu_hours"] / 2)
    assert measured["transfer"]["gpu_hours"] == assumed["transfer"]["gpu_hours"]


def test_a_failed_stage_is_a_line_of_the_table_and_no_unit_cost(check):
    _, _, report, _ = check
    results = [*report["results"], {"stage": "dump", "model": "bloom-560m", "failed": "OutOfMemoryError: CUDA"}]
    lines = table_rows(results)
    assert lines[-1] == ["dump", "bloom-560m", "", "failed", "", "OutOfMemoryError: CUDA"]
    assert measured_unit_costs(results, gpu=False) == measured_unit_costs(report["results"], gpu=False)
    assert measured_unit_costs(results, gpu=True) == []  # no GPU row from CPU results


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here")
def test_asking_for_cuda_without_a_gpu_names_the_fix(tmp_path, capsys):
    from xlprobe.gpucheck import main

    with pytest.raises(SystemExit) as stopped:
        main(["--device", "cuda", "--out", str(tmp_path)])
    assert stopped.value.code == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err and not any(tmp_path.iterdir())

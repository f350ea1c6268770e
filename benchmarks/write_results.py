"""docs/results.md from the runs' own output tables: what the demo, the showcase and the validity
benchmark measured, the unit costs the jobs' requests use, and the paper's grid as `xlprobe plan`
prints it. Every number in it is read from a file a run wrote; rerun this after a run.

    python benchmarks/write_results.py [RESULTS_DIR ...] [--out docs/results.md]

Runs: results/demo and every results/showcase* folder by default. A run's section names the commit
its results record (`provenance.code`); a run that is absent is listed with the command that makes it.
The demo's wall time comes from `<results>/run_time.json`, which scripts/demo.sh writes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from demo_emergence import emergence, plot_emergence
from demo_summary import pos_mi, rule_times

from xlprobe.alignment import read_table
from xlprobe.io import read_tsv, write_text

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "demo": "bash scripts/demo.sh",
    "showcase": "snakemake --cores 2 --configfile config/showcase.yaml",
}


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table of `frame` as it stands (cells already formatted)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join("–" if pd.isna(v) else str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def provenance_line(results: Path) -> str:
    """Which code made the run, from the alignment table's provenance record."""
    record = json.loads((results / "alignment.provenance.json").read_text())
    record = record.get("provenance", record)
    code = record.get("code", {})
    made = code.get("commit", code.get("version", "unknown"))[:12]
    dirty = " with uncommitted changes" if code.get("dirty") else ""
    return f"Run `{results}`: code {made}{dirty}, host {record.get('host', '?')}, written {record.get('created', '?')}."


def run_time_line(results: Path) -> str:
    path = results / "run_time.json"
    if not path.exists():
        return ""
    t = json.loads(path.read_text())
    cpu = f", {t['cpu_s'] / 60:.1f} CPU-minutes" if "cpu_s" in t else ""
    mean = f", {t['load_mean']} on average" if "load_mean" in t else ""
    return (f"Wall time of the workflow from scratch: {t['wall_s'] / 60:.1f} min for {t['jobs']} jobs{cpu} "
            f"(`snakemake --cores {t['cores']}` on {t['cpus']} CPUs; load average {t['load_start']} at the start, "
            f"{t['load_end']} at the end{mean}; finished {t['date']}).")


def points_table(results: Path, k: int | None) -> pd.DataFrame:
    """Per model, step and layer: probes' POS score, overlap against chance and the random band,
    Holm-significant pairs, transfer and LM loss."""
    table = emergence(results, k)
    table["layer"] = table["layer"].str.removeprefix("layer").astype(int)
    table["step"] = table["step"].astype(str)
    rows = table.assign(**{
        "overlap / chance": table["over_chance"].map("{:.2f}".format),
        "random 95% band / chance": [f"{lo / c:.2f}–{hi / c:.2f}" for lo, hi, c in
                                     zip(table["random_2.5%"], table["random_97.5%"], table["chance"])],
        "Holm-significant pairs": [f"{n} ({a})" if a else n for n, a in
                                   zip(table["significant_pairs"], table["attributes_significant"])],
    })
    columns = ["model", "step", "layer", "k"]
    mi = pos_mi(results)
    if len(mi):
        key = next(c for c in mi.columns if c.startswith("dev_mi@"))
        mi = mi.assign(step=mi["step"].astype(str), layer=mi["layer"].astype(int))
        ranges = mi.groupby(["model", "step", "layer"])[key].agg(["min", "max"]).reset_index()
        ranges["POS dev MI, range over languages"] = [f"{a:.2f}–{b:.2f}" for a, b in zip(ranges["min"], ranges["max"])]
        rows = rows.merge(ranges.drop(columns=["min", "max"]), on=["model", "step", "layer"], how="left")
        columns.append("POS dev MI, range over languages")
    columns += ["overlap / chance", "random 95% band / chance", "Holm-significant pairs"]
    alignment = read_table(results / "alignment.tsv")
    alignment = alignment.assign(step=alignment["step"].astype(str), layer=alignment["layer"].astype(int))
    measured = [c for c in alignment.columns if c.startswith("transfer_") and c.count("_") == 1]
    measured += [c for c in ("similarity", "lm_loss") if c in alignment.columns and alignment[c].notna().any()]
    rows = rows.merge(alignment[["model", "step", "layer", *measured]], on=["model", "step", "layer"], how="left")
    for column in measured:
        rows[column] = rows[column].map("{:.3f}".format)
    return rows[columns + measured]


def correlations_table(results: Path) -> pd.DataFrame:
    frame = read_tsv(results / "correlations.tsv")
    # below 3 checkpoints the stage gives no coefficient (a `note` says so)
    frame = frame[(frame["measure"] == "overlap_over_chance") & frame["pearson_r"].notna()]

    def interval(low, high):
        return "–" if pd.isna(low) else f"{low:.2f} to {high:.2f}"

    return pd.DataFrame({
        "layer": frame["layer"], "target": frame["target"], "model": frame["model"], "finals": frame["finals"],
        "n": frame["n"], "Pearson r": frame["pearson_r"].map("{:.2f}".format),
        "95% interval": [interval(a, b) for a, b in zip(frame["pearson_ci_low"], frame["pearson_ci_high"])],
        "Spearman ρ": frame["spearman_rho"].map("{:.2f}".format),
        "95% interval ": [interval(a, b) for a, b in zip(frame["spearman_ci_low"], frame["spearman_ci_high"])],
    })


def run_section(name: str, results: Path, docs: Path) -> list[str]:
    title = f"## {name} (`{results}`)"
    if not (results / "alignment.tsv").exists():
        command = COMMANDS.get(name.split("-")[0], f"snakemake --cores 2 --configfile config/{name}.yaml")
        return [title, f"No finished run in `{results}`: `{command}`, then this script."]
    parts = [title, provenance_line(results)]
    if line := run_time_line(results):
        parts.append(line)
    probes_k = int(read_table(results / "alignment.tsv")["k"].max())
    for k in sorted({probes_k, min(10, probes_k)}, reverse=True):
        parts.append(f"Per checkpoint, k = {k} (overlap: macro mean over attributes of the cross-lingual pairs; "
                     "random band: the same statistic for random neuron sets; Holm at α = 0.05):")
        parts.append(markdown(points_table(results, k)))
    parts += [("Overlap over chance against each target across checkpoints (`correlations.tsv`; bootstrap "
              "intervals over checkpoints):"), markdown(correlations_table(results))]
    figure = docs / f"{name}_emergence.png"
    plot_emergence(emergence(results, probes_k), read_table(results / "alignment.tsv"), figure)
    parts.append(f"![{name}: overlap over chance per checkpoint against random neuron sets, beside transfer]"
                 f"({figure.name})")
    times = rule_times(results).reset_index()
    if len(times):
        parts += ["Seconds per rule (the rules' `benchmark:` files):", markdown(times)]
    return parts


def validity_section(validity: Path) -> list[str]:
    title = "## Validity of the overlap measurement"
    if not validity.exists():
        return [title, f"`{validity}` is absent: `python benchmarks/validity.py` writes it."]
    text = validity.read_text()
    sections = text.split("\n## ")
    planted = next((s for s in sections if s.startswith("Overlap against the planted share")), None)
    made = text.rsplit("\n\n", 1)[-1].strip()
    parts = [title, (f"From [{validity.name}]({validity.name}), written by `python benchmarks/validity.py` "
             f"(planted answers through the workflow's own stages); its tables and design are there. {made}")]
    if planted:
        parts.append("### " + planted.strip())
    return parts


def unit_costs_section(path: Path) -> list[str]:
    costs = pd.read_csv(path, sep="\t", comment="#")
    costs["value"] = costs["value"].map("{:g}".format)
    return ["## Unit costs",
            (f"What the probe, dump and transfer jobs' requests are computed from (`{path.relative_to(REPO)}`, "
            "written by `python benchmarks/bench_unit_costs.py --write`; `source` says whether a value was "
            "measured, when, or assumed):"), markdown(costs)]


def plan_section(config: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", "import sys; from xlprobe.cli import main; sys.exit(main())",
                           "plan", "--config", config], capture_output=True, text=True, cwd=REPO, check=False)
    title = "## Planned cost of the paper's grid"
    if done.returncode:
        return [title, f"`xlprobe plan --config {config}` failed:\n\n```\n{done.stderr.strip()[-2000:]}\n```"]
    printed = done.stdout.strip().replace(f"{REPO}/", "")
    return [title, f"`xlprobe plan --config {config}` (estimates; see [cluster.md](cluster.md)):",
            f"```\n{printed}\n```"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="*", type=Path,
                        help="run folders (default results/demo and results/showcase*)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    args = parser.parse_args(argv)
    showcases = sorted(Path("results").glob("showcase*")) or [Path("results/showcase")]
    runs = args.results or [Path("results/demo"), *showcases]
    docs = args.out.parent
    parts = ["# Results",
             ("Written by `python benchmarks/write_results.py` from the runs' own tables; rerun it after a run "
             "instead of editing this file. The demo and the showcase are tiny synthetic models: they test the "
             "pipeline and the measurement, not the paper's claim.")]
    for results in runs:
        parts += run_section(results.name, results, docs)
    parts += validity_section(docs / "validity.md")
    parts += unit_costs_section(REPO / "src" / "xlprobe" / "data" / "unit_costs.tsv")
    parts += plan_section("config.yaml")
    write_text(args.out, "\n\n".join(parts) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

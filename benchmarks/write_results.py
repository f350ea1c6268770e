"""docs/results.md from the runs' own output tables: what the demo, the showcase and the validity
benchmark measured, the unit costs the jobs' requests use, and the paper's grid as `xlprobe plan`
prints it. Every number in it is read from a file a run wrote; rerun this after a run.

    python benchmarks/write_results.py [RESULTS_DIR ...] [--out docs/results.md]

Runs: results/demo and every results/showcase* folder by default. A run's section names the commit
its results record (`provenance.code`); a run that is absent is listed with the command that makes it.
A run's wall time comes from `<results>/run_time.json`, which scripts/timed-run.sh writes (scripts/demo.sh uses it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from demo_emergence import emergence, plot_emergence
from demo_summary import rule_times

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
    mean = f", {t['load_mean']} on average" if t.get("load_mean") is not None else ""
    return (f"Wall time of the workflow from scratch: {t['wall_s'] / 60:.1f} min for {t['jobs']} jobs "
            f"(`snakemake --cores {t['cores']}` on {t['cpus']} CPUs; load average {t['load_start']} at the start, "
            f"{t['load_end']} at the end{mean}; finished {t['date']}).")


def fmt(value: float, digits: int = 2) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def with_null(value: float, null: float, digits: int = 3) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f} ({fmt(null, digits)})"


def significant_attributes(attributes: pd.DataFrame) -> pd.Series:
    """Per (model, seed, step, layer): the attributes with a Holm-significant cross-lingual pair (p-values
    combined over replicates), each with its significant pairs out of its pairs."""
    rows = attributes[attributes["share_significant"] > 0]
    text = rows.assign(cell=[f"{a} {round(s * n)}/{n}" for a, s, n in
                             zip(rows["attribute"], rows["share_significant"], rows["n_pairs"])])
    listed = text.groupby(POINT, dropna=False)["cell"].agg(", ".join)
    return listed.astype(object).reindex(attributes.set_index(POINT).index.unique(), fill_value="none")


POINT = ["model", "seed", "step", "layer"]


def points_table(results: Path, bands: pd.DataFrame) -> pd.DataFrame:
    """Per model, seed, step and layer (alignment.tsv, the probes' k): every measure beside its null."""
    # one type for the seed in every table (empty without seeds), so that their rows meet
    alignment, attributes = (read_table(results / name).astype({"seed": "Int64"})
                             for name in ("alignment.tsv", "alignment_attributes.tsv"))
    band = bands.astype({"seed": "Int64"}).set_index(POINT)
    rows = alignment.set_index(POINT)
    chance = rows["chance"]
    table = pd.DataFrame(index=rows.index)
    table["overlap / chance (interval)"] = [
        fmt(o) + ("" if pd.isna(lo) else f" ({lo / c:.2f}–{hi / c:.2f})")
        for o, lo, hi, c in zip(rows["overlap_over_chance"], rows["overlap_ci_low"], rows["overlap_ci_high"], chance)]
    band = band.reindex(rows.index)
    table["random band / chance"] = [f"{lo / c:.2f}–{hi / c:.2f}" for lo, hi, c in
                                     zip(band["random_2.5%"], band["random_97.5%"], chance)]
    table["stability (chance)"] = [with_null(v, c, 2) for v, c in zip(rows["stability"], rows["stability_chance"])]
    table["Holm-significant attributes"] = significant_attributes(attributes).reindex(rows.index)
    if "probe_transfer" in rows:
        table["probe transfer (null)"] = [with_null(v, n) for v, n in zip(rows["probe_transfer"],
                                                                           rows["probe_transfer_null"])]
        table["probe transfer: pairs significant"] = rows["probe_transfer_share_significant"].map(fmt)
    if "retrieval" in rows:
        table["retrieval (null)"] = [with_null(v, n) for v, n in zip(rows["retrieval"], rows["retrieval_null"])]
    for column in [*transfer_columns(alignment), "similarity", "lm_loss"]:
        if column in rows and rows[column].notna().any():
            table[column] = rows[column].map(lambda v: fmt(v, 3))
    table = table.reset_index()
    if not alignment["seed"].notna().any():
        table = table.drop(columns="seed")
    else:
        table["seed"] = table["seed"].astype("Int64")
    return table


def transfer_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("transfer_") and c.count("_") == 1]


# The measures whose course over pre-training the run's section states, with their nulls.
MEASURES = {
    "overlap / chance": ("overlap_over_chance", None),
    "stability": ("stability", "stability_chance"),
    "probe transfer": ("probe_transfer", "probe_transfer_null"),
    "retrieval": ("retrieval", "retrieval_null"),
    "similarity": ("similarity", None),
}


def seed_summary(alignment: pd.DataFrame) -> pd.DataFrame:
    """Per model, step and layer over the seeds: each measure's mean and its 95% t-interval over seeds
    (the seeds are independent pre-training runs; t with seeds - 1 degrees of freedom)."""
    from scipy import stats

    columns = {name: column for name, (column, _) in MEASURES.items() if column in alignment}
    columns |= {c: c for c in transfer_columns(alignment)}
    out = []
    for (model, step, layer), group in alignment.groupby(["model", "step", "layer"], sort=False):
        row = {"model": model, "step": step, "layer": layer, "seeds": group["seed"].nunique()}
        for name, column in columns.items():
            values = group[column].dropna().to_numpy(dtype=float)
            mean = values.mean() if len(values) else np.nan
            half = (stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
                    if len(values) > 1 else np.nan)
            row |= {f"{name} mean": mean, f"{name} low": mean - half, f"{name} high": mean + half}
        out.append(row)
    return pd.DataFrame(out)


def seeds_table(alignment: pd.DataFrame, attributes: pd.DataFrame) -> pd.DataFrame:
    summary = seed_summary(alignment)
    table = summary[["model", "step", "layer", "seeds"]].copy()
    names = [n for n in [*MEASURES, *transfer_columns(alignment)] if f"{n} mean" in summary]
    for name in names:
        digits = 2 if name in ("overlap / chance", "stability") else 3
        table[f"{name}: mean (95% over seeds)"] = [
            f"{fmt(m, digits)} ({fmt(lo, digits)} to {fmt(hi, digits)})" for m, lo, hi in
            zip(summary[f"{name} mean"], summary[f"{name} low"], summary[f"{name} high"])]
    nulls = alignment.groupby(["model", "step", "layer"], sort=False)
    for name, (column, null) in MEASURES.items():
        if null and null in alignment:
            table[f"{name}: null"] = nulls[null].mean().map(lambda v: fmt(v, 3)).to_numpy()
    listed = significant_attributes(attributes).reset_index()
    per_seed = listed.groupby(["model", "step", "layer"], sort=False).apply(
        lambda g: "; ".join(f"{int(s)}: {text}" for s, text in zip(g["seed"], g.iloc[:, -1])), include_groups=False)
    table["Holm-significant attributes per seed"] = per_seed.reindex(
        pd.MultiIndex.from_frame(table[["model", "step", "layer"]])).to_numpy()
    return table


def course(alignment: pd.DataFrame) -> list[str]:
    """One sentence per model, layer and measure: its value at the first and the last step (the mean over
    seeds with its 95% interval where there are seeds), whether the last interval lies wholly above
    the first ("rises"), wholly below ("falls") or neither, and where it stands against its null."""
    summary = seed_summary(alignment)
    lines = []
    for (model, layer), group in summary.groupby(["model", "layer"], sort=False):
        first, last = group.iloc[0], group.iloc[-1]
        seeds = int(group["seeds"].max())
        for name in [*MEASURES, *transfer_columns(alignment)]:
            if f"{name} mean" not in group or pd.isna(first[f"{name} mean"]):
                continue
            digits = 2 if name in ("overlap / chance", "stability") else 3
            if seeds > 1:
                verdict = ("rises" if last[f"{name} low"] > first[f"{name} high"] else
                           "falls" if last[f"{name} high"] < first[f"{name} low"] else
                           "does not change beyond its seed intervals")
                span = (f"{fmt(first[f'{name} mean'], digits)} ({fmt(first[f'{name} low'], digits)} to "
                        f"{fmt(first[f'{name} high'], digits)}) at step {first['step']} to "
                        f"{fmt(last[f'{name} mean'], digits)} ({fmt(last[f'{name} low'], digits)} to "
                        f"{fmt(last[f'{name} high'], digits)}) at step {last['step']}")
            else:
                change = last[f"{name} mean"] - first[f"{name} mean"]
                verdict = f"changes by {change:+.{digits}f} (one pre-training run: no interval over seeds)"
                span = (f"{fmt(first[f'{name} mean'], digits)} at step {first['step']} to "
                        f"{fmt(last[f'{name} mean'], digits)} at step {last['step']}")
            null = MEASURES.get(name, (None, None))[1]
            against = ""
            if name == "overlap / chance":
                against = "; chance is 1"
            elif null and null in alignment:
                at_last = alignment[(alignment["model"] == model) & (alignment["layer"] == layer)
                                    & (alignment["step"] == last["step"])][null].mean()
                against = f"; its null at step {last['step']} is {fmt(at_last, digits)}"
            lines.append(f"- {model}, layer {layer}, {name}: {verdict}: {span}{against}.")
    return lines


def correlations_table(results: Path) -> pd.DataFrame:
    frame = read_tsv(results / "correlations.tsv")
    # below 3 checkpoints the stage gives no coefficient (a `note` says so); one measure per idea
    measures = ["overlap_over_chance", "probe_transfer", "retrieval", "similarity"]
    frame = frame[frame["measure"].isin(measures) & frame["pearson_r"].notna()]
    if frame["finals"].nunique() > 1:  # without `final` steps the two rows are one
        same = frame.drop(columns="finals").duplicated(keep="first")
        frame = frame[~same | (frame["finals"] == "included")]
        if not (frame["finals"] == "excluded").any():
            frame = frame.drop(columns="finals")

    def interval(low, high):
        return "–" if pd.isna(low) else f"{low:.2f} to {high:.2f}"

    seeds = frame["seed"] if "seed" in frame else pd.Series(np.nan, index=frame.index)
    table = pd.DataFrame({
        "layer": frame["layer"], "measure": frame["measure"], "target": frame["target"], "model": frame["model"],
        "seed": [pd.NA if pd.isna(v) else str(v).removesuffix(".0") for v in seeds], "n": frame["n"], "Pearson r": frame["pearson_r"].map("{:.2f}".format),
        "95% interval": [interval(a, b) for a, b in zip(frame["pearson_ci_low"], frame["pearson_ci_high"])],
        "Spearman ρ": frame["spearman_rho"].map("{:.2f}".format),
        "95% interval ": [interval(a, b) for a, b in zip(frame["spearman_ci_low"], frame["spearman_ci_high"])],
    })
    if "finals" in frame:
        table.insert(5, "finals", frame["finals"])
    if table["seed"].isna().all():
        table = table.drop(columns="seed")
    return table


def run_section(name: str, results: Path, docs: Path) -> list[str]:
    title = f"## {name} (`{results}`)"
    if not (results / "alignment.tsv").exists():
        command = COMMANDS.get(name.split("-")[0], f"snakemake --cores 2 --configfile config/{name}.yaml")
        return [title, f"No finished run in `{results}`: `{command}`, then this script."]
    parts = [title, provenance_line(results)]
    if line := run_time_line(results):
        parts.append(line)
    alignment = read_table(results / "alignment.tsv")
    attributes = read_table(results / "alignment_attributes.tsv")
    k, replicates = int(alignment["k"].max()), int(alignment["replicates"].max())
    parts.append(
        f"Per checkpoint at the probes' k = {k}, {replicates} probe replicate(s) (`alignment.tsv`). Overlap: macro "
        "mean over attributes of the cross-lingual pairs, over chance k/D, with its 95% interval over probe "
        "replicates and language pairs where there are replicates; random band: the same statistic for random "
        "neuron sets. Stability: the share of top-k picks two replicates have in common, beside its chance. "
        "Holm-significant attributes: pairs with a Holm-corrected p < 0.05 (p-values combined over replicates). "
        "Probe transfer: accuracy of a readout trained in one language on another's words, beside its "
        "permuted-label null, and the share of ordered pairs that beat both the null and the majority class. "
        "Retrieval: the share of parallel sentences whose translation is their nearest neighbour, beside "
        "random pairing (1/n).")
    bands = emergence(results, k)  # the random bands (2,000 draws per overlap table): once per run
    parts.append(markdown(points_table(results, bands)))
    if alignment["seed"].nunique() > 1:
        parts += [("Over the pre-training seeds: each measure's mean with its 95% t-interval over seeds, the "
                   "nulls' mean, and the Holm-significant attributes of each seed:"),
                  markdown(seeds_table(alignment, attributes))]
    parts += [("What rises and what does not, first against last step (stated by this script from the table "
               "above; \"rises\" needs the last step's interval over seeds wholly above the first's):"),
              "\n".join(course(alignment))]
    parts += [("Each alignment measure against each transfer target across checkpoints (`correlations.tsv`; "
              "bootstrap intervals over checkpoints, and over seeds where pooled):"), markdown(correlations_table(results))]
    figure = docs / f"{name}_emergence.png"
    plot_emergence(bands, alignment, figure)
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

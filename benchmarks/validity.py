"""Validity of the measurement: planted cross-lingual neuron sharing, recovered through the workflow's stages.

    python benchmarks/validity.py            # D = 128 (k = 10) and D = 1024 (k = 50), 20 seeds: the docs' table
    python benchmarks/validity.py --quick    # D = 128, 3 seeds, 3 values of ρ: a minute
    python benchmarks/validity.py --part controls   # only the alignment measures' controls (20 seeds)

For each width and share ρ of planted neurons shared by all four languages, `xlprobe.validity`
writes synthetic activations as workflow files, probes them with `probe_treebank`, and computes the
overlap file with `compute_overlap`. Printed per (D, k', ρ): mean overlap (and its spread over seeds),
what perfect recovery of the planted neurons would give, chance k'/D, the planted neurons' recall in
the top k', and the share of pairs that are Holm-significant at α = 0.05 (the false-positive rate at
ρ = 0, the power above) and of attribute families with any. Then the correlation stage's 95%
bootstrap interval: how often it holds the known correlation of synthetic checkpoint series.

`--part replicates --jobs 2` runs only the probe-replicate check (5.5 minutes on 2 cores;
`--quick`: 3 seeds): D = 128, k = 10, ρ in {0, 0.25, 0.5}, 20 seeds, 3 probe replicates per
language. It reports how often the overlap's 95% interval (xlprobe.uncertainty) holds the expected
overlap, and the false-positive rate and power of the Holm test from one replicate and combined
over three, into --out and docs/replicates.md.

The full run writes docs/validity.md and docs/validity.png (--docs to choose the folder) and the raw
overlap rows to --out. Runs one process on one thread: the machine it was measured on is shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xlprobe.validity import (
    CONDITIONS,
    LANGUAGES,
    PROBE_CONFIG,
    Setting,
    correlation_coverage,
    noise_pick_profile,
    replicate_coverage,
    replicate_intervals,
    run_control,
    run_setting,
    summarize,
    summarize_controls,
)

ALPHA = 0.05
SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
# (width, the probe's k, the k' read from the overlap file): k = 10 at D = 128 (the demo's),
# k = 50 at D = 1024 (the paper's), where k' = 10 shows what a smaller k would have seen.
FULL = {"widths": ((128, 10, (10,)), (1024, 50, (10, 50))), "shares": SHARES, "seeds": 20}
QUICK = {"widths": ((128, 10, (10,)),), "shares": (0.0, 0.5, 1.0), "seeds": 3}
COVERAGE_FULL = {"points": (3, 4, 6, 25), "true_r": (0.5, 0.9), "repeats": 400, "resamples": 1000}
COVERAGE_QUICK = {"points": (6, 25), "true_r": (0.7,), "repeats": 40, "resamples": 200}
REPLICATES_FULL = {"width": 128, "k": 10, "shares": (0.0, 0.25, 0.5), "seeds": 20, "replicates": 3}
REPLICATES_QUICK = {**REPLICATES_FULL, "seeds": 3}
# The alignment measures' controls: D = 64, k = 8 (20 seeds in half an hour on a shared machine).
CONTROLS_FULL = {"width": 64, "k": 8, "seeds": 20, "sentences": 200, "permutations": 20}
CONTROLS_QUICK = {**CONTROLS_FULL, "seeds": 2}
# The bar for a measure's false-positive rate where no readout is shared.
NULL_CONDITIONS = ("own_rotations", "nothing_shared")


def overlap_runs(plan: dict, rows: int, progress: bool = True) -> tuple[pd.DataFrame, ...]:
    """Every (width, ρ, seed) through the probe and overlap stages: raw rows, their summary, and how the
    picks that are not planted neurons spread over the neurons' noise scale."""
    frames, summaries, picks = [], [], []
    for width, k, ks in plan["widths"]:
        started = time.perf_counter()
        runs = []
        for rho in plan["shares"]:
            quantiles = []
            for seed in range(plan["seeds"]):
                runs.append(run_setting(Setting(width=width, shared_share=rho, k=k, rows=rows), seed))
                quantiles.append(runs[-1].attrs.pop("noise_scale_quantiles"))
                if progress:
                    print(
                        f"  D={width} ρ={rho:.2f} seed {seed}: {time.perf_counter() - started:.0f} s",
                        file=sys.stderr,
                    )
            picks.append(
                {"width": width, "k": k, "shared_share": rho, **noise_pick_profile(np.concatenate(quantiles))}
            )
        frame = pd.concat(runs, ignore_index=True)
        frames.append(frame)
        summaries.append(summarize(frame, ks=ks, alpha=ALPHA).assign(seconds=time.perf_counter() - started))
    return pd.concat(frames, ignore_index=True), pd.concat(summaries, ignore_index=True), pd.DataFrame(picks)


def replicate_seed(plan: dict, rows: int, rho: float, seed: int) -> pd.DataFrame:
    """One (ρ, seed) with `plan["replicates"]` probes per language: its overlap rows."""
    torch.set_num_threads(1)
    setting = Setting(width=plan["width"], shared_share=rho, k=plan["k"], rows=rows)
    frame = run_setting(setting, seed, replicates=plan["replicates"])
    frame.attrs.clear()
    return frame


def replicate_runs(plan: dict, rows: int, jobs: int = 1, progress: bool = True) -> pd.DataFrame:
    """Every (ρ, seed) of the replicate check, in `jobs` processes of one thread each: the overlap rows."""
    points = [(rho, seed) for rho in plan["shares"] for seed in range(plan["seeds"])]
    return in_processes(replicate_seed, [(plan, rows, *p) for p in points], jobs,
                        [f"replicates: ρ={rho:.2f} seed {seed}" for rho, seed in points], progress)


def in_processes(function, arguments: list[tuple], jobs: int, labels: list[str], progress: bool) -> pd.DataFrame:
    """`function(*a)` for each tuple `a` of `arguments` in `jobs` processes: the frames it returns, in order,
    each announced on stderr by its label and the time so far."""
    from concurrent.futures import ProcessPoolExecutor

    started, frames = time.perf_counter(), []
    with ProcessPoolExecutor(jobs) as pool:
        for label, frame in zip(labels, pool.map(function, *zip(*arguments))):
            frames.append(frame)
            if progress:
                print(f"  {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return pd.concat(frames, ignore_index=True)


REPLICATES_TABLE = {
    "ρ": "{shared_share:.2f}",
    "level": "{level}",
    "intervals": "{intervals}",
    "overlap": "{overlap:.3f}",
    "expected": "{expected:.3f}",
    "holds expected": "{coverage_expected:.3f}",
    "holds mean over seeds": "{coverage_grand_mean:.3f}",
    "mean width": "{mean_width:.3f}",
    "pairs significant, 1 replicate": "{significant_single:.3f}",
    "pairs significant, combined": "{significant_combined:.3f}",
    "families with one, 1 replicate": "{familywise_single:.3f}",
    "families with one, combined": "{familywise_combined:.3f}",
}
REPLICATES_INTRO = """# The overlap's interval and significance under probe replicates

Generated by `python benchmarks/validity.py --part replicates --jobs {jobs}` (xlprobe.validity's planted activations;
the design is in docs/validity.md). Each (ρ, seed) probes every language {replicates} times
(`probe.replicates: {replicates}`), D = {width}, k = {k}, {seeds} seeds per ρ, {rows} words per language.
Replicate 0 reads the words as they are; replicates 1.. a stratified bootstrap of the train and dev
words (xlprobe.probing.replicate_splits) with a probe seed of their own.

**Interval** (`overlap_ci_low`/`overlap_ci_high`): the two-way (pigeonhole) bootstrap over probe
replicates and language pairs of xlprobe.uncertainty, per attribute and for the mean over attributes.
`holds expected`: how often it holds the expected overlap: at ρ = 0 that is chance, k/D, exactly
what the null gives; above, the overlap if the planted neurons were ranked first, which the probe's
recall falls short of, so that column is no coverage there. `holds mean over seeds`: how often it
holds the mean overlap over all seeds of the setting (a Monte-Carlo estimate of the expectation,
valid at every ρ). **Significance**: the share of pairs (and of attribute families with any pair)
that are Holm-significant at α = 0.05, from replicate 0 alone (a run without replicates) and with
each pair's p-value combined over the replicates as min(1, 2 × median) before Holm. At ρ = 0 these
are false positives; above, power.
"""


def render_replicates(out: Path, docs: Path | None) -> str:
    summary = pd.read_csv(out / "replicates_summary.tsv", sep="\t")
    run = json.loads((out / "run.json").read_text())["replicates"]
    text = "\n\n".join([
        REPLICATES_INTRO.format(**run).rstrip(),
        markdown(summary, REPLICATES_TABLE),
        f"Wall time {run['seconds'] / 60:.1f} min, {run.get('jobs', 1)} process(es) of one thread, niced, on a shared machine.",
    ])
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "replicates.md").write_text(text + "\n")
    return text


def checks(summary: pd.DataFrame) -> list[str]:
    """The checks: FPR at ρ = 0 within α (per pair and family-wise); overlap increasing in ρ."""
    failures = []
    for (width, k), group in summary.groupby(["width", "k"]):
        group = group.sort_values("shared_share")
        null = group[group["shared_share"] == 0]
        if not null.empty and (null["significant"].iloc[0] > ALPHA or null["familywise"].iloc[0] > ALPHA):
            failures.append(f"D={width} k={k}: false-positive rate above {ALPHA} at ρ = 0")
        if not np.all(np.diff(group["overlap"].to_numpy()) > 0):
            failures.append(f"D={width} k={k}: overlap not increasing in ρ")
    return failures


def control_seed(plan: dict, rows: int, seed: int, conditions: Sequence[str] = CONDITIONS) -> pd.DataFrame:
    """One seed of the conditions through the probe, overlap, probe-transfer and retrieval stages."""
    torch.set_num_threads(1)
    setting = Setting(width=plan["width"], shared_share=1.0, k=plan["k"], rows=rows)
    return pd.concat([run_control(condition, setting, seed, plan["sentences"], plan["permutations"], ALPHA)
                      for condition in conditions], ignore_index=True)


def control_runs(plan: dict, rows: int, jobs: int = 1, progress: bool = True,
                 conditions: Sequence[str] = CONDITIONS) -> pd.DataFrame:
    """Every seed of the controls, in `jobs` processes of one thread each."""
    seeds = range(plan["seeds"])
    return in_processes(control_seed, [(plan, rows, s, conditions) for s in seeds], jobs,
                        [f"controls seed {s}" for s in seeds], progress)


def control_checks(summary: pd.DataFrame) -> list[str]:
    """The issue's bar: each measure's false-positive rate <= α where no readout is shared."""
    null = summary[summary["condition"].isin(NULL_CONDITIONS)]
    return [f"{r.measure} in {r.condition}: false-positive rate {r.detected:.3f} > {ALPHA}"
            for r in null.itertuples() if r.detected > ALPHA]


CONTROLS_TABLE = {
    "measure": "{measure}",
    "planted information": "{condition}",
    "seeds": "{seeds}",
    "units": "{units}",
    "mean value": "{value:.3f}",
    "mean null": "{null:.3f}",
    "detected": "{detected:.3f}",
}
CONTROLS_HEADING = "## Controls for the alignment measures"
CONTROLS_INTRO = """Generated by `python benchmarks/validity.py --part controls --rows {rows} --jobs {jobs}` (it rewrites
this section only).

Four languages, the three attributes above, {rows} words each, D = {width}; each attribute in 8
planted neurons whose class means are the same in every language (a shared code), except where
nothing is shared. The information sits (a) `shared_neurons`: in the same neurons in every language;
(b) `shared_rotation`: spread over all neurons by one random rotation common to all languages;
(c) `own_rotations`: spread by a rotation of each language's own, one that carries the planted
neurons into a subspace orthogonal to every other language's (xlprobe.validity.own_rotations;
independent random rotations would leave a weak shared readout); (d) `nothing_shared`: in each
language's own neurons with its own class means. For retrieval, {sentences} parallel sentence vectors
per language whose content (8 Gaussian values) is placed the same ways (in (d) each language's row i
has content of its own). Units: overlap, a language pair per attribute, detected when its
Holm-corrected hypergeometric p < α at k = {k} (null: chance k/D); probe transfer, an ordered pair
per attribute, detected when p_value = max(p_permutation, p_majority) <= α ({permutations}
permutations of A's labels; null: their mean accuracy); retrieval, a language pair, detected when
its permutation p <= α (1000 random pairings; null: their mean, 1/n). `detected` is the power in
(a) and (b) and the false-positive rate in (c) and (d); the bar there is α = {alpha}. Wall time
{minutes:.1f} min, {jobs} processes of one thread each on a shared machine{reruns}.
"""


def render_controls(out: Path, docs: Path | None) -> tuple[str, list[str]]:
    """The controls section from `out`'s controls.tsv; in `docs`/validity.md it replaces its own section."""
    summary = pd.read_csv(out / "controls.tsv", sep="\t")
    run = json.loads((out / "run.json").read_text())["controls"]
    failures = control_checks(summary)
    section = "\n\n".join([
        CONTROLS_HEADING,
        CONTROLS_INTRO.format(**{**run, "reruns": "".join(
            f"; then {', '.join(r['conditions'])} rerun alone (`--conditions`): {r['seconds'] / 60:.1f} min"
            for r in run.get("reruns", []))}, alpha=ALPHA, minutes=run["seconds"] / 60).strip(),
        markdown(summary, CONTROLS_TABLE),
        "Checks: " + ("all passed" if not failures else "; ".join(failures)),
    ]) + "\n"
    if docs is not None:
        path = docs / "validity.md"
        text = path.read_text() if path.exists() else INTRO
        before = text.split(CONTROLS_HEADING)[0].rstrip() + "\n\n"
        path.write_text(before + section)
    return section, failures


def coverage_runs(plan: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [
            correlation_coverage(n, r, plan["repeats"], plan["resamples"])
            for n in plan["points"]
            for r in plan["true_r"]
        ]
    )


# Header -> cell format (str.format over a row of the summary or the coverage table).
OVERLAP_TABLE = {
    "D": "{width}",
    "k": "{k}",
    "ρ": "{shared_share:.2f}",
    "overlap (sd over seeds)": "{overlap:.3f} ({overlap_sd:.3f})",
    "expected": "{expected:.3f}",
    "chance k/D": "{chance:.3f}",
    "recall of planted": "{recall:.2f}",
    "pairs significant": "{significant:.3f}",
    "families with one": "{familywise:.3f}",
}
PICKS_TABLE = {
    "D": "{width}",
    "k": "{k}",
    "ρ": "{shared_share:.2f}",
    "non-planted picks": "{noise_picks}",
    "mean scale quantile": "{mean_quantile:.3f}",
    "in the lowest scale decile": "{lowest_decile:.3f}",
    "in the top scale decile": "{top_decile:.3f}",
}
COVERAGE_TABLE = {
    "checkpoints": "{points}",
    "true r": "{true_r:.1f}",
    "intervals": "{defined}",
    "Pearson coverage": "{pearson_coverage:.3f}",
    "mean width": "{pearson_width:.2f}",
    "Spearman coverage": "{spearman_coverage:.3f}",
    "mean width ": "{spearman_width:.2f}",
}


def markdown(frame: pd.DataFrame, columns: dict[str, str]) -> str:
    lines = ["| " + " | ".join(h.strip() for h in columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.to_dict("records"):
        # NaN: no interval (fewer than correlation.MIN_INTERVAL_POINTS checkpoints).
        cells = [cell.format(**row).replace("nan", "–") for cell in columns.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(summary: pd.DataFrame, coverage: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for (width, k), group in summary.groupby(["width", "k"]):
        label = f"D={width}, k={k}"
        line = axes[0].errorbar(
            group["shared_share"],
            group["overlap"],
            yerr=group["overlap_sd"],
            marker="o",
            label=label,
            capsize=3,
        )
        color = line[0].get_color()
        axes[0].plot(group["shared_share"], group["expected"], ls="--", color=color, alpha=0.6)
        axes[0].axhline(group["chance"].iloc[0], ls=":", color=color, alpha=0.6)
        axes[1].plot(group["shared_share"], group["significant"], marker="o", color=color, label=label)
    axes[0].set(
        xlabel="share ρ of planted neurons shared by all languages",
        ylabel="mean overlap at k",
        title="overlap (dashed: planted neurons found; dotted: chance)",
    )
    axes[1].axhline(ALPHA, ls=":", color="grey", label=f"α = {ALPHA}")
    axes[1].set(
        xlabel="share ρ",
        ylabel="share of pairs Holm-significant",
        title="false positives (ρ = 0) and power",
        ylim=(-0.02, 1.02),
    )
    for r, group in coverage.groupby("true_r"):
        axes[2].plot(group["points"], group["pearson_coverage"], marker="o", label=f"Pearson, r = {r}")
        axes[2].plot(
            group["points"], group["spearman_coverage"], marker="s", ls="--", label=f"Spearman, r = {r}"
        )
    axes[2].axhline(0.95, ls=":", color="grey", label="nominal 95%")
    axes[2].set(
        xscale="log",
        xlabel="checkpoints in the series",
        ylabel="coverage",
        title="95% bootstrap interval",
        ylim=(0, 1.02),
    )
    axes[2].set_xticks(
        sorted(coverage["points"].unique()), [str(p) for p in sorted(coverage["points"].unique())]
    )
    axes[2].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


INTRO = """\
# Validity of the overlap measurement

Generated by `python benchmarks/validity.py` (re-render from a run's tables with `--render`).

**Design.** Four synthetic languages, three attributes with imbalanced classes (part of speech: 6
classes, 34% to 7%; number: 78/22%; case: 52% to 10%). In each language every attribute sits in 8
planted neurons of unequal strength; a share ρ of them is at the same neurons in all four languages,
the rest at neurons drawn for each language independently (at ρ = 0 two languages' neurons meet by
chance only: the null the hypergeometric test assumes). All other neurons are Gaussian noise whose
scale differs by neuron (log-normal) and is the same in every language, with two 20× outlier
neurons, as in a model's residual stream. The activations are written as the workflow's files and
go through `probe_treebank` (probe + greedy top-k), `compute_overlap` (overlap, exact hypergeometric
p-value, Holm over the 6 language pairs of an attribute) and, for the last table, the correlation
stage's `correlation_table`.

**Columns.** `overlap`: mean over seeds, attributes and pairs at k (sd: of the per-seed means);
`expected`: the overlap if every probe ranked its planted neurons first; `recall`: share of the
planted neurons within the top k; `pairs significant`: share of pairs with Holm-corrected p < α
(at ρ = 0 the false-positive rate; above, the power); `families with one`: share of (seed,
attribute) families with any significant pair (what Holm bounds by α). Coverage: how often the 95%
percentile-bootstrap interval of a series of checkpoints holds the true correlation of the bivariate
normal it was drawn from (Spearman against 6/π·asin(r/2)). With 3 checkpoints the stage gives no
interval (`correlation.MIN_INTERVAL_POINTS` = 4, shown as –): of 3 points, 18 of the 27 bootstrap
resamples hold only 2 distinct points, whose correlation is ±1 by construction; a 3-point "95%"
interval held the true r in only 60% (r = 0.5) and 41% (r = 0.9) of 400 series each (this benchmark
with the minimum set to 3).
"""


def render(out: Path, docs: Path | None) -> tuple[str, list[str]]:
    """The report (tables, settings, checks) from a run's files in `out`; also written to `docs`."""
    summary = pd.read_csv(out / "summary.tsv", sep="\t")
    coverage = pd.read_csv(out / "coverage.tsv", sep="\t")
    run = json.loads((out / "run.json").read_text())
    failures = checks(summary)
    settings = (
        f"{len(LANGUAGES)} languages, {run['rows']} words each, attributes {', '.join(run['attributes'])}, "
        f"8 planted neurons per attribute and language, {run['seeds']} seeds per setting; probe "
        f"max_epochs {run['probe']['max_epochs']}, patience {run['probe']['patience']}, "
        f"criterion {run['probe']['criterion']}; α = {ALPHA}; {run['coverage']['repeats']} series per "
        f"coverage cell, {run['coverage']['resamples']} bootstrap resamples. Wall time "
        f"{run['overlap_seconds'] / 60:.1f} min for the overlap runs, {run['coverage_seconds'] / 60:.1f} min "
        f"for the coverage, "
        f"one process on one thread."
    )
    report = "\n\n".join(
        [
            "## Overlap against the planted share ρ",
            markdown(summary, OVERLAP_TABLE),
            *(
                [
                    "## Where the picks beyond the planted neurons fall",
                    (
                        "Neurons ranked by noise scale (the same in every language); unbiased picks "
                        "would have mean quantile 0.5 and 0.1 in each decile."
                    ),
                    markdown(pd.read_csv(out / "noise_picks.tsv", sep="\t"), PICKS_TABLE),
                ]
                if (out / "noise_picks.tsv").exists()
                else []
            ),
            "## Coverage of the correlation stage's 95% bootstrap interval",
            markdown(coverage.assign(defined=coverage["repeats"] - coverage["undefined"]), COVERAGE_TABLE),
            settings,
            "Checks: " + ("all passed" if not failures else "; ".join(failures)),
        ]
    )
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "validity.md").write_text(INTRO + "\n" + report + "\n")
        figure(summary, coverage, docs / "validity.png")
    return report, failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="D = 128 only, 3 seeds, ρ in {0, 0.5, 1}")
    parser.add_argument("--rows", type=int, default=1500, help="words per language (default 1500)")
    parser.add_argument(
        "--out", type=Path, default=Path("results/validity"), help="raw overlap rows and tables"
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="write validity.md and validity.png here (default docs/ for the full run)",
    )
    parser.add_argument(
        "--part",
        choices=("all", "overlap", "coverage", "render", "replicates", "controls"),
        default="all",
        help="run only the overlap or the coverage part (the other's files in --out are kept), "
        "or only re-render the report from --out; controls: only the alignment measures' controls, "
        "written as their own section of validity.md",
    )
    parser.add_argument("--widths", type=int, nargs="+", help="only these widths of the plan (D)")
    parser.add_argument("--jobs", type=int, default=1, help="controls and replicates: seeds run in this many processes")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS,
                        help="controls: rerun only these conditions, keeping the others' rows in --out "
                        "(each condition draws from its own seeded stream)")
    parser.add_argument("--shares", type=float, nargs="+", help="only these shares ρ")
    args = parser.parse_args(argv)
    docs = args.docs if args.docs is not None else (None if args.quick else Path("docs"))
    plan, coverage_plan = (QUICK, COVERAGE_QUICK) if args.quick else (FULL, COVERAGE_FULL)
    args.out.mkdir(parents=True, exist_ok=True)
    run_path = args.out / "run.json"
    run = json.loads(run_path.read_text()) if run_path.exists() else {}
    torch.set_num_threads(1)
    if args.part == "replicates":
        plan = REPLICATES_QUICK if args.quick else REPLICATES_FULL
        started = time.perf_counter()
        frame = replicate_runs(plan, args.rows, args.jobs)
        intervals = replicate_intervals(frame, plan["k"], ALPHA)
        intervals.to_csv(args.out / "replicates.tsv", sep="\t", index=False)
        replicate_coverage(intervals).to_csv(args.out / "replicates_summary.tsv", sep="\t", index=False)
        run["replicates"] = {**plan, "shares": list(plan["shares"]), "rows": args.rows, "jobs": args.jobs,
                             "seconds": round(time.perf_counter() - started, 1)}
        run_path.write_text(json.dumps(run, indent=1) + "\n")
        print(render_replicates(args.out, args.docs if args.docs is not None else (None if args.quick else Path("docs"))))
        return 0
    if args.part == "controls":
        controls = CONTROLS_QUICK if args.quick else CONTROLS_FULL
        started = time.perf_counter()
        conditions = args.conditions or CONDITIONS
        frame = control_runs(controls, args.rows, args.jobs, conditions=conditions)
        seconds = round(time.perf_counter() - started, 1)
        rows_path = args.out / "controls_rows.tsv"
        if args.conditions:
            kept = pd.read_csv(rows_path, sep="\t")
            if kept["seed"].nunique() != controls["seeds"] or run.get("controls", {}).get("rows") != args.rows:
                raise SystemExit(f"{rows_path}: not a run of {controls['seeds']} seeds and {args.rows} rows; "
                                 "run every condition")
            frame = pd.concat([kept[~kept["condition"].isin(conditions)], frame], ignore_index=True)
            run["controls"]["reruns"] = [*run["controls"].get("reruns", []),
                                         {"conditions": list(conditions), "seconds": seconds}]
        else:
            run["controls"] = {**controls, "rows": args.rows, "jobs": args.jobs, "seconds": seconds}
        frame.to_csv(rows_path, sep="\t", index=False)
        summarize_controls(frame).to_csv(args.out / "controls.tsv", sep="\t", index=False)
        run_path.write_text(json.dumps(run, indent=1) + "\n")
        section, failures = render_controls(args.out, docs)
        print(section)
        return 1 if failures else 0
    if args.part in ("all", "overlap"):
        started = time.perf_counter()
        if args.widths:
            plan = {**plan, "widths": tuple(w for w in plan["widths"] if w[0] in args.widths)}
        if args.shares:
            plan = {**plan, "shares": tuple(args.shares)}
        frame, summary, picks = overlap_runs(plan, args.rows)
        frame.to_csv(args.out / "overlap_rows.tsv", sep="\t", index=False)
        summary.to_csv(args.out / "summary.tsv", sep="\t", index=False)
        picks.to_csv(args.out / "noise_picks.tsv", sep="\t", index=False)
        run |= {
            "rows": args.rows,
            "seeds": plan["seeds"],
            "attributes": sorted(frame["attribute"].unique()),
            "probe": PROBE_CONFIG,
            "overlap_seconds": round(time.perf_counter() - started, 1),
        }
    if args.part in ("all", "coverage"):
        started = time.perf_counter()
        coverage_runs(coverage_plan).to_csv(args.out / "coverage.tsv", sep="\t", index=False)
        run |= {
            "coverage": {"repeats": coverage_plan["repeats"], "resamples": coverage_plan["resamples"]},
            "coverage_seconds": round(time.perf_counter() - started, 1),
        }
    run_path.write_text(json.dumps(run, indent=1) + "\n")
    missing = [name for name in ("summary.tsv", "coverage.tsv") if not (args.out / name).exists()]
    if missing:
        print(f"{args.out}: no {', '.join(missing)} yet (run the other --part): no report")
        return 0
    report, failures = render(args.out, docs)
    if (args.out / "controls.tsv").exists():
        section, control_failures = render_controls(args.out, docs)
        report, failures = report + "\n\n" + section, failures + control_failures
    print(report)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

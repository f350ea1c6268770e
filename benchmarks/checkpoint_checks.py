"""The checkpoint checks on a config without `similarity:` against the local hub: the numbers of docs/checks.md.

Three tiny BLOOM series of the same short training (tests/localhub.py's CHECK_MODELS), steps 0, 20, 40, 60,
80: `bloom-x30` (step 40's weight matrices multiplied by 30, step 80 republishing step 60),
`bloom-adjacent` (steps 40 and 60 scrambled) and `bloom-healthy`. With config/hub.yaml's probing part
(its three real UD treebanks cut to 120 sentences each, no transfer, no similarity), Snakemake makes
every checkpoint's lm_loss record and bloom-x30's dumps; the script writes each step's LM loss and
verdicts (xlprobe.alignment.checkpoint_checks, as the alignment table), and the lm_loss jobs' times
beside the dumps' of the same checkpoints.

    python benchmarks/checkpoint_checks.py --out docs/checks_run.md

Needs the shared data (XLPROBE_SHARED_DATA, default ../shared/data) and olah (scripts/hub-server).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from xlprobe.alignment import checkpoint_checks
from xlprobe.workflow_config import with_defaults

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the local hub's test repos
from localhub import CHECK_MODELS, CHECK_STEPS, add_models, checks_config, cut_treebanks

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probing_config(workdir: Path, data: Path) -> Path:
    hub = yaml.safe_load((REPO / "config" / "hub.yaml").read_text())
    ud_root = cut_treebanks(data / "ud-2.1", workdir / "ud", hub["treebanks"], 120)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(checks_config(hub, ud_root, CHECK_MODELS)))
    return configfile


def job_seconds(results: Path, rule: str) -> pd.Series:
    """Wall seconds of each job of `rule` (Snakemake's benchmark files)."""
    return pd.Series([pd.read_csv(path, sep="\t")["s"].iloc[0] for path in sorted((results / "benchmarks" / rule).rglob("*.tsv"))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/checks_run.md")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    data = Path(os.environ.get("XLPROBE_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
    env = {**os.environ, "XLPROBE_SHARED_DATA": str(data), "PYTHON": sys.executable}
    with tempfile.TemporaryDirectory() as tmp:
        work, hub = Path(tmp), Path(tmp) / "hub"
        port = free_port()
        subprocess.run([str(REPO / "scripts" / "hub-server"), "start", str(hub), str(port)], env=env, check=True)
        try:
            add_models(hub / "mirrors", CHECK_MODELS, data)
            configfile = probing_config(work, data)
            run_env = {k: v for k, v in env.items() if not k.startswith("HF_")}
            run_env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(work / "home"),
                           HF_HUB_DISABLE_PROGRESS_BARS="1")
            records = [f"results/hub/lm_loss/{spec.name}/{step}.json" for spec in CHECK_MODELS for step in CHECK_STEPS]
            treebanks = yaml.safe_load(configfile.read_text())["treebanks"]
            dumps = [f"results/hub/activations/{CHECK_MODELS[0].name}/{step}/{treebank}/meta.json"
                     for step in CHECK_STEPS for treebank in treebanks]
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                            str(work), "--configfile", str(configfile), "--cores", str(args.cores), *records, *dumps],
                           env=run_env, check=True)
            wall = time.monotonic() - started
        finally:
            subprocess.run([str(REPO / "scripts" / "hub-server"), "stop", str(hub)], env=env, check=True)
        results = work / "results" / "hub"
        config = with_defaults(yaml.safe_load(configfile.read_text()), REPO / "config" / "schema.yaml")
        checks = checkpoint_checks([work / record for record in records], config["checks"]["suspect_margin"])
        loaded = {(r["model"], str(r["step"])): r for r in (json.loads((work / p).read_text()) for p in records)}
        lm_loss, dump = job_seconds(results, "lm_loss"), job_seconds(results, "dump_activations")
        load = pd.Series([r["seconds"]["load"] for r in loaded.values()])
        loss = pd.Series([r["seconds"]["loss"] for r in loaded.values()])
        sentences = {lang: entry["sentences"] for lang, entry in next(iter(loaded.values()))["languages"].items()}
    lines = [
        "<!-- written by benchmarks/checkpoint_checks.py; rerun it to regenerate -->",
        f"{len(records)} checkpoints (3 models x {len(CHECK_STEPS)} steps), no `similarity:`; "
        f"{len(dumps)} dumps of {CHECK_MODELS[0].name}; {args.cores} cores, {wall / 60:.1f} min wall. "
        "LM-loss sample (UD test files): " + ", ".join(f"{lang} {n}" for lang, n in sentences.items()) + " sentences.",
        "",
        "| model | step | LM loss (nats) | uniform guess ln V | suspect | duplicate_of |",
        "|---|---|---|---|---|---|",
    ]
    for row in checks.itertuples(index=False):
        record = loaded[(row.model, str(row.step))]
        lines.append(f"| {row.model} | {row.step} | {row.lm_loss:.3f} | {record['uniform_loss']:.3f} | "
                     f"{'yes' if row.suspect else ''} | {row.duplicate_of} |")
    lines += [
        "",
        "| job | jobs | median wall s | of which: checkpoint load s | loss s |",
        "|---|---|---|---|---|",
        f"| lm_loss | {len(lm_loss)} | {lm_loss.median():.1f} | {load.median():.2f} | {loss.median():.2f} |",
        f"| dump_activations | {len(dump)} | {dump.median():.1f} | | |",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

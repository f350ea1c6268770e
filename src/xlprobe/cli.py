"""The `xlprobe` command: each stage of the workflow as a subcommand, usable without Snakemake."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

COMMANDS: dict[str, Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]]] = {}


def command(name: str):
    """Register a subcommand: the decorated function adds its arguments and returns its runner."""

    def register(func):
        COMMANDS[name] = func
        return func

    return register


@command("to-unimorph")
def _to_unimorph(parser: argparse.ArgumentParser):
    parser.description = "Convert a UD CoNLL-U file's FEATS to UniMorph tags, as the paper's converter did."
    parser.add_argument("--language", required=True, help="ISO 639-1 code selecting the language rules")
    parser.add_argument("--input", required=True, help="UD CoNLL-U file")
    parser.add_argument("--output", required=True, help="CoNLL-U file with UniMorph tags in FEATS")

    def run(args: argparse.Namespace) -> int:
        from xlprobe.unimorph import convert_file

        convert_file(args.input, args.output, language=args.language)
        return 0

    return run


@command("select-neurons")
def _select_neurons(parser: argparse.ArgumentParser):
    parser.description = (
        "Train the latent-variable probe on any embeddings and greedily select the top-k neurons."
    )
    for split in ("train", "dev", "test"):
        parser.add_argument(f"--{split}", required=True, help=f"{split} embeddings, .npy [n, D]")
        parser.add_argument(f"--{split}-labels", required=True, help="one class name per line, row-aligned")
    from xlprobe.workflow_config import schema_defaults

    probe = schema_defaults("probe")  # the workflow's defaults (config/schema.yaml)
    parser.add_argument("--k", type=int, default=probe["k"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--criterion", choices=["mi", "accuracy"], default=probe["criterion"])
    parser.add_argument("--greedy", choices=["vectorized", "loop"], default=probe["greedy"])
    for name, kind in [("max-epochs", int), ("patience", int), ("lr", float), ("batch-size", int),
                       ("mc-samples", int), ("entropy-scale", float)]:
        parser.add_argument(f"--{name}", type=kind, default=probe[name.replace("-", "_")])
    parser.add_argument(
        "--keep-last-epoch", action="store_true", help="the released code's behaviour: no restore of the best epoch"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", required=True, help="result JSON")

    def run(args: argparse.Namespace) -> int:
        from xlprobe.probing import select_neurons_cli

        return select_neurons_cli(args)

    return run


@command("generate-demo-data")
def _generate_demo_data(parser: argparse.ArgumentParser):
    parser.description = "Write the demo's synthetic treebanks, pre-training text and parallel text."
    parser.add_argument("--config", default="config/demo.yaml", help="workflow config with a `demo` section")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        import yaml

        from xlprobe.demo.synthetic import generate_from_config

        config = yaml.safe_load(Path(args.config).read_text())
        generate_from_config(config["demo"], ud_root=config["ud_root"], seed=config["seed"])
        return 0

    return run


@command("transfer")
def _transfer(parser: argparse.ArgumentParser):
    parser.description = "Fine-tune a checkpoint on the source language; score zero-shot transfer to the targets."
    parser.add_argument("--checkpoint", required=True, help="Hugging Face model directory")
    parser.add_argument("--task", required=True, choices=["udpos", "xnli"])
    parser.add_argument("--format", choices=["conllu", "xtreme", "tsv", "hub"])
    parser.add_argument("--source", required=True, help="source language (or treebank id for conllu)")
    parser.add_argument("--targets", nargs="*", default=[])
    parser.add_argument("--file", action="append", default=[], metavar="KEY=PATH",
                        help="xtreme/tsv: train=, dev= (optional), <target>=; conllu: <treebank>=word table")
    parser.add_argument("--method", default="lora", choices=["qlora", "lora", "full", "frozen"])
    for name, kind in [("epochs", float), ("max-train-examples", int), ("max-eval-examples", int),
                       ("eval-interval", int), ("batch-size", int), ("lr", float), ("max-length", int)]:
        parser.add_argument(f"--{name}", type=kind, help="default: the paper's (see xlprobe.transfer.DEFAULTS)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="metrics TSV (a .json sidecar is written beside it)")

    def run(args: argparse.Namespace) -> int:
        from xlprobe.transfer import transfer_cli

        return transfer_cli(args)

    return run


@command("similarity")
def _similarity(parser: argparse.ArgumentParser):
    parser.description = "Mean cosine of parallel sentences' last-token and mean-pooled vectors, per layer."
    parser.add_argument("--checkpoint", required=True, help="Hugging Face model directory")
    parser.add_argument("--pair", action="append", required=True, metavar="SRC-TGT")
    parser.add_argument("--file", action="append", required=True, metavar="KEY=PATH[,PATH]",
                        help="a language's aligned file, or SRC-TGT=source_file,target_file, or a .tsv table")
    parser.add_argument("--layers", type=int, nargs="*", help="default: every layer")
    parser.add_argument("--max-pairs", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", required=True, help="TSV: source, target, layer, pooling, cosine, pairs")

    def run(args: argparse.Namespace) -> int:
        from xlprobe.similarity import similarity_cli

        return similarity_cli(args)

    return run


@command("plan")
def _plan(parser: argparse.ArgumentParser):
    parser.description = (
        "Before launching: the jobs of Snakemake's DAG per rule, their requests, estimated CPU- and GPU-hours "
        "and disk (unit costs times each model's shape from its config.json; no word tables needed)."
    )
    parser.add_argument("--config", default="config.yaml", help="workflow config")
    parser.add_argument("--unit-costs", help="unit-cost TSV (default: the one shipped, xlprobe/data/unit_costs.tsv)")
    parser.add_argument("--directory", default=".", help="where the workflow runs (ud_root and results start there)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")

    def run(args: argparse.Namespace) -> int:
        from xlprobe.plan import plan_cli

        return plan_cli(args)

    return run


@command("verify")
def _verify(parser: argparse.ArgumentParser):
    parser.description = (
        "Check every recorded file under a results folder (activations, their meta.json, probes) and the "
        "checkpoints its dumps used against their recorded sizes and checksums. Run it from the "
        "workflow's directory. Exits 1 if any file is damaged or missing, printing the command that "
        "rebuilds exactly it."
    )
    parser.add_argument("results", help="results folder (the config's `results`)")
    parser.add_argument("--configfile", help="the config the run used, written into the rebuild commands")

    def run(args: argparse.Namespace) -> int:
        from xlprobe.integrity import verify_results

        try:
            checked, damaged = verify_results(args.results, args.configfile)
        except FileNotFoundError as error:
            print(f"xlprobe verify: {error}", file=sys.stderr)
            return 2
        for error in damaged:
            label = "MISSING" if error.problem == "missing" else "DAMAGED"
            print(f"{label} {error.path}: {error.problem}\n  rebuild: {error.rebuild}")
        print(f"{checked} files checked, {len(damaged)} damaged or missing")
        return 1 if damaged else 0

    return run


@command("probe-transfer")
def _probe_transfer(parser: argparse.ArgumentParser):
    parser.description = (
        "Train a linear classifier on language A's embeddings and score it on language B's, over the classes "
        "both have, with a permutation null from A's labels permuted."
    )
    parser.add_argument("--train", required=True, help="A's train embeddings, .npy [n, D]")
    parser.add_argument("--train-labels", required=True, help="one class name per line, row-aligned")
    parser.add_argument("--dev", help="A's dev embeddings (then dev_accuracy: A's classifier on A)")
    parser.add_argument("--dev-labels")
    parser.add_argument("--test", required=True, help="B's test embeddings, .npy [m, D]")
    parser.add_argument("--test-labels", required=True)
    parser.add_argument("--own-train", help="B's train embeddings (then own_accuracy and normalized)")
    parser.add_argument("--own-train-labels")
    parser.add_argument("--permutations", type=int, default=20, help="permutations of A's labels for the null")
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=200, help="L-BFGS iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", required=True, help="result JSON")

    def run(args: argparse.Namespace) -> int:
        for features, labels in (("dev", "dev_labels"), ("own_train", "own_train_labels")):
            if bool(getattr(args, features)) != bool(getattr(args, labels)):
                parser.error(f"--{features.replace('_', '-')} and --{labels.replace('_', '-')} go together")
        from xlprobe.probe_transfer import probe_transfer_cli

        return probe_transfer_cli(args)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xlprobe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    runners = {name: add(sub.add_parser(name)) for name, add in COMMANDS.items()}
    args = parser.parse_args(argv)
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

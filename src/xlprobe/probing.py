"""Probing runs: train the latent-variable probe and select neurons, per attribute of a treebank or
for any embeddings with labels (the `select-neurons` command).

Features are the raw activations, not standardized: the released code fed the hidden states as they
are, and the probe's masks act on neurons in their own units, so rescaling would change which neurons
a subset keeps informative. (BLOOM's few outlier neurons are therefore seen at their true scale.)
"""

from __future__ import annotations

import argparse
import logging
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import expit

from xlprobe.greedy import greedy_select
from xlprobe.integrity import check_file, read_record_json, rebuild_command, write_sealed_json
from xlprobe.io import write_json
from xlprobe.probe import LatentSubsetProbe
from xlprobe.provenance import provenance
from xlprobe.wordtable import read_attribute_table, read_word_table

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
# config.probe keys -> LatentSubsetProbe arguments (k, criterion, greedy and device are handled apart).
PROBE_ARGUMENTS = (
    "lr",
    "batch_size",
    "max_epochs",
    "patience",
    "mc_samples",
    "entropy_scale",
    "restore_best",
)


def attribute_seed(seed: int, attribute: str, replicate: int = 0) -> int:
    """A seed per attribute and probe replicate, fixed by the config seed, the attribute's name and the
    replicate; replicate 0 keeps the stream of a run without replicates."""
    key = f"{seed}\t{attribute}" if replicate == 0 else f"{seed}\t{attribute}\t{replicate}"
    return zlib.crc32(key.encode()) & 0x7FFFFFFF


def resampled_rows(labels: np.ndarray, seed: int) -> np.ndarray:
    """Row indices of a bootstrap sample of `labels` stratified by class: each class's rows drawn with
    replacement as many times as the class has rows, so every class keeps its count (a plain bootstrap
    can drop a rare class from a small dev split). Sorted, so the rows keep their table order."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(rows, size=len(rows), replace=True)
             for rows in (np.flatnonzero(labels == c) for c in np.unique(labels))]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)


def replicate_splits(
    splits: dict[str, tuple[np.ndarray, np.ndarray]], seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A replicate's words: the train and dev rows (what the probe and the greedy selection learn
    from) resampled by `resampled_rows`, seeded per split; the test rows, which only score, as they are."""
    out = dict(splits)
    for split in ("train", "dev"):
        X, y = splits[split]
        rows = resampled_rows(y, attribute_seed(seed, split))
        out[split] = (X[rows], y[rows])
    return out


def probe_attribute(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: Sequence[str],
    *,
    k: int,
    seed: int,
    criterion: str = "mi",
    greedy: str = "vectorized",
    device: str = "cpu",
    progress: bool = True,
    **probe_args: Any,
) -> dict[str, Any]:
    """Train the probe on `splits['train']`, greedily select min(k, D) neurons on dev, score on test.

    `splits` maps train/dev/test to (features [N, D], integer labels indexing `classes`).
    Returns the per-attribute record of the probe result file (see docs/files.md).
    """
    started = time.perf_counter()
    (train_X, train_y), (dev_X, dev_y), (test_X, test_y) = (splits[s] for s in SPLITS)
    probe = LatentSubsetProbe(seed=seed, device=device, progress=progress, **probe_args)
    probe.fit(train_X, train_y, n_classes=len(classes))
    picks = greedy_select(
        probe.weight_,
        probe.bias_,
        dev_X,
        dev_y,
        k,
        criterion=criterion,
        method=greedy,
        test_X=test_X,
        test_y=test_y,
        progress=progress,
    )
    # The probe was trained on random subsets; with every neuron on it is scored outside what it saw
    # (negative MI is common), so its whole-input score is the one under its learned subset family.
    dev_family, test_family = probe.family_score(dev_X, dev_y), probe.family_score(test_X, test_y)
    return {
        "classes": list(classes),
        "counts": {
            s: dict(zip(classes, np.bincount(splits[s][1], minlength=len(classes)).tolist())) for s in SPLITS
        },
        "seed": seed,
        **picks.to_dict(),
        "mask_family": {
            "expected_neurons": float(expit(probe.mask_logits_.astype(np.float64)).sum()),
            "dev_mi": dev_family["mi"],
            "dev_accuracy": dev_family["accuracy"],
            "test_mi": test_family["mi"],
            "test_accuracy": test_family["accuracy"],
        },
        "epochs": probe.epochs_,
        "best_epoch": probe.best_epoch_,
        "stopped_early": probe.stopped_early_,
        "seconds": round(time.perf_counter() - started, 3),
    }


def probe_settings(probe_config: dict[str, Any]) -> dict[str, Any]:
    """The probe arguments of a config's `probe:` section (its keys filled from the schema's defaults)."""
    settings = {key: probe_config[key] for key in PROBE_ARGUMENTS}
    settings.update(criterion=probe_config["criterion"], greedy=probe_config["greedy"], device=probe_config["device"])
    return settings


# ----------------------------------------------------------------------------- workflow stage
def probe_treebank(
    words_path: str | Path,
    attributes_path: str | Path,
    activations_path: str | Path,
    meta_path: str | Path,
    out_path: str | Path,
    *,
    probe_config: dict[str, Any],
    seed: int,
    threads: int = 1,
    labels: dict[str, Any] | None = None,
    progress: bool = True,
    replicates: int = 1,
) -> dict[str, Any]:
    """Probe every attribute with kept values in one treebank's activations; write the result JSON.

    `replicates` independent probe trainings and greedy selections per attribute, each seeded by
    `attribute_seed(seed, attribute, replicate)`, on the activations loaded once. Replicate 0 reads the
    treebank's words as they are (the run without replicates); replicates 1.. read a bootstrap sample
    of its train and dev words (`replicate_splits`), so that their spread holds which words the treebank
    happens to have, not only the probe's own randomness.
    `labels` (model, seed, step, layer, treebank, ...) are copied into the result as they are.
    """
    if replicates < 1:
        raise ValueError(f"probe.replicates must be at least 1, not {replicates}")
    torch.set_num_threads(threads)
    words = read_word_table(words_path)
    attributes = read_attribute_table(attributes_path)
    # The dump recorded what its files should be: a damaged one stops here, named, before any use.
    meta = read_record_json(meta_path)
    check_file(activations_path, (meta.get("files") or {}).get(Path(activations_path).name),
               rebuild_command(activations_path))
    activations = np.load(activations_path, mmap_mode="r")
    _check_inputs(words, attributes, activations, words_path, attributes_path, activations_path)

    skipped = {str(s) for s in meta.get("skipped_sentences", [])}
    usable = ~words["sentence_id"].isin(skipped) & words["split"].isin(SPLITS)
    k = int(probe_config["k"])
    settings = probe_settings(probe_config)
    results: list[dict[str, Any]] = [{} for _ in range(replicates)]
    for attribute, values in _kept_values(attributes, attributes_path).items():
        if attribute not in words.columns:
            raise ValueError(f"{attributes_path}: attribute {attribute!r} has no column in {words_path}")
        rows = usable & words[attribute].isin(values)
        splits = {}
        classes = sorted(values)
        for split in SPLITS:
            index = np.flatnonzero((rows & (words["split"] == split)).to_numpy())
            labels_of_rows = pd.Categorical(words[attribute].to_numpy()[index], categories=classes).codes
            splits[split] = (
                np.asarray(activations[index], dtype=np.float32),
                labels_of_rows.astype(np.int64),
            )
            if len(index) == 0:
                raise ValueError(f"{words_path}: no {split} rows for attribute {attribute!r}")
        _check_finite(splits, activations_path, attribute)
        for replicate in range(replicates):
            seed_here = attribute_seed(seed, attribute, replicate)
            log.info(
                "%s: %d classes, %s rows, replicate %d of %d, seed %d",
                attribute,
                len(classes),
                "/".join(str(len(splits[s][1])) for s in SPLITS),
                replicate + 1,
                replicates,
                seed_here,
            )
            words_here = splits if replicate == 0 else replicate_splits(splits, seed_here)
            record = probe_attribute(
                words_here, classes, k=min(k, activations.shape[1]), seed=seed_here, progress=progress, **settings
            )
            if replicate:
                record["words"] = "bootstrap of train and dev"
            results[replicate][attribute] = record
            log.info(
                "%s: top neurons %s, dev %s %.3f, test MI under the mask family %.3f",
                attribute,
                record["selected"][:5],
                settings["criterion"],
                record["dev_score"][-1],
                record["mask_family"]["test_mi"],
            )
    result = {
        **(labels or {}),
        "dimension": int(activations.shape[1]),
        "k": k,
        "criterion": settings["criterion"],
        "replicates": replicates,
        "attributes": results[0],
        **({"replicate_attributes": results[1:]} if replicates > 1 else {}),
        "provenance": provenance(
            {"probe": probe_config, "seed": seed},
            inputs={
                "words": str(words_path),
                "attributes": str(attributes_path),
                "activations": str(activations_path),
                "meta": str(meta_path),
            },
            # The weights behind the activations, as their dump recorded them.
            checkpoint=(meta.get("provenance") or {}).get("checkpoint"),
            threads=threads,
        ),
    }
    return write_sealed_json(out_path, result)


def _kept_values(attributes: pd.DataFrame, path) -> dict[str, list[str]]:
    """Attribute -> its kept values, in the table's order; attributes with < 2 kept values dropped."""
    table = attributes[attributes["kept"]]
    values = {a: group["value"].tolist() for a, group in table.groupby("attribute", sort=False)}
    for attribute in [a for a, v in values.items() if len(v) < 2]:
        log.warning("%s: attribute %r has fewer than 2 kept values; not probed", path, attribute)
        del values[attribute]
    return values


def _check_inputs(words, attributes, activations, words_path, attributes_path, activations_path) -> None:
    for column in ("sentence_id", "split"):
        if column not in words.columns:
            raise ValueError(f"{words_path}: missing column {column!r}")
    missing = {"attribute", "value", "kept"} - set(attributes.columns)
    if missing:
        raise ValueError(f"{attributes_path}: missing columns {sorted(missing)}")
    if activations.ndim != 2 or activations.shape[0] != len(words):
        raise ValueError(
            f"{activations_path}: shape {activations.shape} does not match the {len(words)} rows of {words_path}"
        )


def _check_finite(splits, path, attribute) -> None:
    for split, (X, _) in splits.items():
        if not np.isfinite(X).all():
            raise ValueError(f"{path}: NaN or infinite activations among the {split} rows of {attribute!r}")


# ----------------------------------------------------------------------------- command line
def select_neurons_cli(args: argparse.Namespace) -> int:
    """`xlprobe select-neurons`: probe any embeddings with one class name per line of a label file."""
    torch.set_num_threads(getattr(args, "threads", 1))
    train_labels = _read_labels(args.train_labels)
    classes = sorted(set(train_labels))
    if len(classes) < 2:
        raise SystemExit(f"{args.train_labels}: needs at least 2 classes, found {classes}")
    splits = {}
    for split in SPLITS:
        features_path, labels_path = getattr(args, split), getattr(args, f"{split}_labels")
        X = np.load(features_path)
        names = train_labels if split == "train" else _read_labels(labels_path)
        if X.ndim != 2 or X.shape[0] != len(names):
            raise SystemExit(
                f"{features_path}: shape {X.shape} does not match the {len(names)} labels of {labels_path}"
            )
        index = {name: i for i, name in enumerate(classes)}
        unknown = [(line, name) for line, name in enumerate(names, 1) if name not in index]
        if unknown:
            line, name = unknown[0]
            raise SystemExit(
                f"{labels_path}, line {line}: class {name!r} does not occur in {args.train_labels}"
            )
        splits[split] = (np.asarray(X, dtype=np.float32), np.array([index[n] for n in names], dtype=np.int64))
        if not np.isfinite(splits[split][0]).all():
            raise SystemExit(f"{features_path}: contains NaN or infinite values")
    dims = {splits[s][0].shape[1] for s in SPLITS}
    if len(dims) != 1:
        raise SystemExit(f"train/dev/test embeddings differ in width: {sorted(dims)}")
    for split in ("dev", "test"):
        if len(np.unique(splits[split][1])) < 2:
            raise SystemExit(
                f"{getattr(args, split + '_labels')}: a single class; normalized MI is undefined"
            )

    settings = {
        "lr": args.lr,
        "batch_size": args.batch_size,
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "mc_samples": args.mc_samples,
        "entropy_scale": args.entropy_scale,
        "restore_best": not args.keep_last_epoch,
    }
    record = probe_attribute(
        splits,
        classes,
        k=min(args.k, dims.pop()),
        seed=args.seed,
        criterion=args.criterion,
        greedy=args.greedy,
        device=args.device,
        progress=not args.quiet,
        **settings,
    )
    inputs = {s: getattr(args, s) for s in SPLITS} | {
        f"{s}_labels": getattr(args, f"{s}_labels") for s in SPLITS
    }
    record["provenance"] = provenance(
        {**settings, "k": args.k, "seed": args.seed, "criterion": args.criterion, "greedy": args.greedy},
        inputs=inputs,
    )
    write_json(args.out, record)
    return 0


def _read_labels(path: str | Path) -> list[str]:
    names = Path(path).read_text().splitlines()
    for line, name in enumerate(names, 1):
        if not name.strip():
            raise SystemExit(f"{path}, line {line}: empty label")
    return [name.strip() for name in names]

"""Controls with a known answer: is cross-lingual neuron sharing found where it was planted, and only there?

Synthetic activations for several languages carry each attribute in a few planted neurons; a share ρ
of them sits at the same neurons in every language, the rest at neurons drawn for each language on
its own (two languages' own neurons coincide only by chance: the null the hypergeometric test
assumes). The activations go through the workflow's own stages as files: `probe_treebank` (probe
training and greedy selection), `compute_overlap` (overlap, hypergeometric p-values, Holm), and the
correlation stage's `correlation_table` on synthetic checkpoint series with a known correlation.

What is realistic here: class imbalance (a frequent class and rare ones), neurons of different
scales that keep their scale in every language (as a model's dimensions do), a few outlier neurons of
large scale shared by all languages (as BLOOM's), and planted neurons of unequal strength.
"""

from __future__ import annotations

import itertools
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from xlprobe.correlation import correlation_table
from xlprobe.io import write_json, write_npy, write_tsv
from xlprobe.overlap import compute_overlap
from xlprobe.probing import probe_treebank
from xlprobe.workflow_config import schema_defaults

log = logging.getLogger(__name__)

# Class shares of each attribute: one frequent class and rare ones, as in UD treebanks.
ATTRIBUTES: dict[str, tuple[float, ...]] = {
    "Part of Speech": (0.34, 0.24, 0.16, 0.11, 0.08, 0.07),
    "Number": (0.78, 0.22),
    "Case": (0.52, 0.24, 0.14, 0.10),
}
LANGUAGES = ("la", "lb", "lc", "ld")
SPLIT_SHARES = {"train": 0.8, "dev": 0.1, "test": 0.1}
# The probe with the schema's defaults (the paper's), fewer epochs (the planted signal is learnt within them).
PROBE_CONFIG = {**schema_defaults("probe"), "max_epochs": 10, "patience": 4, "device": "cpu"}


@dataclass(frozen=True)
class Setting:
    """One synthetic experiment: width D, share ρ of planted neurons shared by all languages, probe k."""

    width: int
    shared_share: float
    k: int
    rows: int = 1500
    planted: int = 8
    languages: tuple[str, ...] = LANGUAGES
    attributes: tuple[str, ...] = tuple(ATTRIBUTES)
    outliers: int = 2
    signal: float = 1.0

    @property
    def shared(self) -> int:
        """Planted neurons per attribute shared by every language."""
        return round(self.shared_share * self.planted)

    def expected_overlap(self, k: int) -> float:
        """Overlap at k if each probe ranks its planted neurons first: the shared ones, plus chance
        coincidences of the other k - s picks among the D - s other neurons."""
        s = min(self.shared, k)
        return (s + (k - s) ** 2 / (self.width - s)) / k


def plant(setting: Setting, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Attribute -> language -> its planted neurons; the first `setting.shared` are the same everywhere.

    Shared neurons of different attributes are distinct; a language's own neurons are drawn from the
    neurons no attribute shares, distinct within the language, independently of other languages.
    """
    n_attr = len(setting.attributes)
    if n_attr * setting.planted > setting.width:
        raise ValueError(
            f"{n_attr} attributes x {setting.planted} planted neurons exceed width {setting.width}"
        )
    shared_all = rng.choice(setting.width, n_attr * setting.shared, replace=False)
    free = np.setdiff1d(np.arange(setting.width), shared_all)
    own = setting.planted - setting.shared
    planted: dict[str, dict[str, np.ndarray]] = {a: {} for a in setting.attributes}
    for language in setting.languages:
        drawn = rng.choice(free, n_attr * own, replace=False)
        for i, attribute in enumerate(setting.attributes):
            shared = shared_all[i * setting.shared : (i + 1) * setting.shared]
            planted[attribute][language] = np.concatenate([shared, drawn[i * own : (i + 1) * own]])
    return planted


def synthetic_language(
    setting: Setting,
    planted: dict[str, np.ndarray],
    scales: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Activations [rows, D] and class labels per attribute for one language.

    Every neuron is Gaussian noise of its own scale; a planted neuron of an attribute adds the mean of
    the row's class (drawn per language, neuron and class, of unequal strength across neurons).
    """
    X = rng.normal(size=(setting.rows, setting.width)) * scales
    labels = {}
    for attribute in setting.attributes:
        shares = np.asarray(ATTRIBUTES[attribute])
        y = rng.choice(len(shares), setting.rows, p=shares / shares.sum())
        neurons = planted[attribute]
        strength = setting.signal * rng.uniform(0.5, 1.5, size=len(neurons)) * scales[neurons]
        means = rng.normal(size=(len(shares), len(neurons))) * strength
        X[:, neurons] += means[y]
        labels[attribute] = y
    return X.astype(np.float16), labels


def neuron_scales(setting: Setting, rng: np.random.Generator) -> np.ndarray:
    """Per-neuron noise scales, the same in every language: log-normal, plus a few large outliers."""
    scales = rng.lognormal(0.0, 0.5, size=setting.width)
    scales[rng.choice(setting.width, setting.outliers, replace=False)] *= 20.0
    return scales


def write_treebank(folder: Path, X: np.ndarray, labels: dict[str, np.ndarray], rng) -> dict[str, Path]:
    """The probe stage's inputs for one language: word table, attribute counts, activations, meta."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = len(X)
    split = rng.choice(list(SPLIT_SHARES), rows, p=list(SPLIT_SHARES.values()))
    words = pd.DataFrame(
        {"sentence_id": np.arange(rows) // 10, "word_id": np.arange(rows) % 10, "split": split}
    )
    counts = []
    for attribute, y in labels.items():
        words[attribute] = [f"v{c}" for c in y]
        for value in range(len(ATTRIBUTES[attribute])):
            n = {s: int(((y == value) & (split == s)).sum()) for s in SPLIT_SHARES}
            counts.append({"attribute": attribute, "value": f"v{value}", **n, "kept": min(n.values()) > 0})
    paths = {
        "words": folder / "words.tsv",
        "attributes": folder / "attributes.tsv",
        "activations": folder / "layer1.npy",
        "meta": folder / "meta.json",
    }
    write_tsv(paths["words"], words)
    write_tsv(paths["attributes"], pd.DataFrame(counts))
    write_npy(paths["activations"], X)
    write_json(paths["meta"], {"rows": rows, "width": X.shape[1], "skipped_sentences": []})
    return paths


def run_setting(setting: Setting, seed: int, workdir: str | Path | None = None, replicates: int = 1) -> pd.DataFrame:
    """Probe every language, compute the overlap file, and return its rows with the planted truth.

    Adds to the overlap file's columns: `seed`, `width`, `shared_share`, `expected` (see
    `Setting.expected_overlap`) and `recall` (the share of the pair's planted neurons within their
    top k'; of replicate 0). `replicates` probes per language (rows per replicate, see
    xlprobe.overlap). `frame.attrs["noise_scale_quantiles"]`: for every top-k pick that is not one of its
    language's planted neurons, the quantile of that neuron's noise scale among all D (0.5 on
    average if such picks ignored the scale).
    """
    rng = np.random.default_rng([seed, setting.width, round(100 * setting.shared_share)])
    planted = plant(setting, rng)
    scales = neuron_scales(setting, rng)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        probe_paths = []
        for language in setting.languages:
            X, labels = synthetic_language(setting, {a: planted[a][language] for a in planted}, scales, rng)
            inputs = write_treebank(Path(tmp) / language, X, labels, rng)
            out = Path(tmp) / "probes" / f"{language}.json"
            probe_treebank(
                *inputs.values(),
                out,
                probe_config={**PROBE_CONFIG, "k": setting.k},
                seed=seed,
                labels={"treebank": language, "language": language},
                progress=False,
                replicates=replicates,
            )
            probe_paths.append(out)
        frame = compute_overlap(probe_paths, Path(tmp) / "overlap.tsv", k=setting.k, seed=seed)
        selected = {p.stem: _selected(p) for p in probe_paths}
    frame.insert(0, "seed", seed)
    frame.insert(1, "width", setting.width)
    frame.insert(2, "shared_share", setting.shared_share)
    frame["expected"] = [setting.expected_overlap(k) for k in frame["k"]]
    frame["recall"] = [
        _recall(selected, planted, row.attribute, (row.language_a, row.language_b), row.k)
        for row in frame.itertuples()
    ]
    quantile = np.argsort(np.argsort(scales)) / (setting.width - 1)
    noise_picks = [
        n
        for lang, chosen in selected.items()
        for attribute, neurons in chosen.items()
        for n in neurons
        if n not in planted[attribute][lang]
    ]
    frame.attrs["noise_scale_quantiles"] = quantile[noise_picks]
    return frame


def _selected(path: Path) -> dict[str, list[int]]:
    import json

    return {a: r["selected"] for a, r in json.loads(path.read_text())["attributes"].items()}


def _recall(selected, planted, attribute, languages, k) -> float:
    found = [np.isin(planted[attribute][lang], selected[lang][attribute][:k]).mean() for lang in languages]
    return float(np.mean(found))


def noise_pick_profile(quantiles: np.ndarray) -> dict[str, float]:
    """How the non-planted picks spread over the neurons' scale: mean quantile, lowest and top decile shares."""
    quantiles = np.asarray(quantiles)
    return {
        "noise_picks": len(quantiles),
        "mean_quantile": float(quantiles.mean()),
        "lowest_decile": float((quantiles < 0.1).mean()),
        "top_decile": float((quantiles >= 0.9).mean()),
    }


def summarize(frame: pd.DataFrame, ks: Sequence[int] | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Per (width, k', ρ): mean overlap, chance, the expectation, recall, and the Holm rejection rates.

    `significant` is the share of pairs with Holm-corrected p < alpha (at ρ = 0 every rejection is a
    false positive: the per-pair false-positive rate); `familywise` the share of (seed, attribute)
    families with at least one (what Holm bounds by alpha). `overlap_sd` is the spread over seeds of the
    per-seed mean overlap.
    """
    rows = []
    for (width, k), group in frame.groupby(["width", "k"]):
        if ks is not None and k not in ks:
            continue
        for rho, at in group.groupby("shared_share"):
            significant = at["p_holm"] < alpha
            families = significant.groupby([at["seed"], at["attribute"]]).any()
            per_seed = at.groupby("seed")["overlap"].mean()
            rows.append(
                {
                    "width": width,
                    "k": k,
                    "shared_share": rho,
                    "seeds": at["seed"].nunique(),
                    "pairs": len(at),
                    "overlap": at["overlap"].mean(),
                    "overlap_sd": per_seed.std(ddof=1) if len(per_seed) > 1 else math.nan,
                    "expected": at["expected"].mean(),
                    "chance": at["chance"].mean(),
                    "recall": at["recall"].mean(),
                    "significant": significant.mean(),
                    "familywise": families.mean(),
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- probe replicates
def replicate_intervals(frame: pd.DataFrame, k: int, alpha: float = 0.05) -> pd.DataFrame:
    """Per (width, ρ, seed, attribute) and per (width, ρ, seed) as attribute `mean`: the overlap at k
    over replicates and pairs with its 95% interval (xlprobe.uncertainty), the truth it should hold,
    and the share of pairs Holm-significant from replicate 0 alone and combined over the replicates.

    Truths: `expected` (k/D at ρ = 0, where chance coincidence is all there is; above, the planted
    neurons ranked first, which the probe's recall falls short of) and `grand_mean`, the mean of the
    overlap over every seed of the setting (a Monte-Carlo estimate of the expected overlap that holds
    at every ρ).
    """
    from xlprobe.alignment import significant_pairs
    from xlprobe.uncertainty import overlap_cells, pigeonhole_interval

    rows = []
    at_k = frame[frame["k"] == k]
    for (width, rho, seed), run in at_k.groupby(["width", "shared_share", "seed"]):
        names, cells = overlap_cells(run)
        low, high, point_low, point_high = pigeonhole_interval(cells, seed=int(seed))
        single = significant_pairs(run[run["replicate"] == 0], alpha)
        combined = significant_pairs(run, alpha)
        for i, name in enumerate([*names, "mean"]):
            pick = slice(None) if name == "mean" else [i]
            of_single = single if name == "mean" else single[single["attribute"] == name]
            of_combined = combined if name == "mean" else combined[combined["attribute"] == name]
            rows.append({
                "width": width, "k": k, "shared_share": rho, "seed": seed, "attribute": name,
                "replicates": cells.shape[1],
                "overlap": float(np.nanmean(np.nanmean(cells[pick], axis=(1, 2)))),
                "low": point_low if name == "mean" else low[i],
                "high": point_high if name == "mean" else high[i],
                "expected": float(run["expected"].iloc[0]),
                "significant_single": of_single["significant"].mean(),
                "significant_combined": of_combined["significant"].mean(),
                "familywise_single": of_single.groupby("attribute")["significant"].any().mean(),
                "familywise_combined": of_combined.groupby("attribute")["significant"].any().mean(),
            })
    table = pd.DataFrame(rows)
    table["grand_mean"] = table.groupby(["width", "shared_share", "attribute"])["overlap"].transform("mean")
    return table


def replicate_coverage(intervals: pd.DataFrame) -> pd.DataFrame:
    """Per (width, k, ρ) and level (one attribute, the mean over attributes): how often the interval
    holds `expected` and `grand_mean`, its mean width, and the significance rates."""
    level = np.where(intervals["attribute"] == "mean", "mean over attributes", "one attribute")
    holds = intervals.assign(
        level=level,
        holds_expected=(intervals["low"] <= intervals["expected"]) & (intervals["expected"] <= intervals["high"]),
        holds_grand_mean=(intervals["low"] <= intervals["grand_mean"]) & (intervals["grand_mean"] <= intervals["high"]),
        width_ci=intervals["high"] - intervals["low"],
    )
    return (
        holds.groupby(["width", "k", "shared_share", "level"], sort=True)
        .agg(intervals=("low", "size"), replicates=("replicates", "first"), overlap=("overlap", "mean"),
             expected=("expected", "mean"), coverage_expected=("holds_expected", "mean"),
             coverage_grand_mean=("holds_grand_mean", "mean"), mean_width=("width_ci", "mean"),
             significant_single=("significant_single", "mean"),
             significant_combined=("significant_combined", "mean"),
             familywise_single=("familywise_single", "mean"),
             familywise_combined=("familywise_combined", "mean"))
        .reset_index()
    )


# ----------------------------------------------------------------------------- correlation stage
def correlation_coverage(
    points: int, true_r: float, repeats: int, resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """How often the correlation stage's 95% bootstrap interval holds a known Pearson correlation.

    Each repeat draws `points` checkpoints of (overlap, transfer) from a bivariate normal with
    correlation `true_r` and runs `correlation_table` on them as one model's alignment rows. Spearman
    is scored against its population value for the bivariate normal, 6/π · asin(r/2).
    """
    rng = np.random.default_rng([seed, points, round(1000 * true_r)])
    covariance = [[1.0, true_r], [true_r, 1.0]]
    true_spearman = 6 / math.pi * math.asin(true_r / 2)
    hits = {"pearson": 0, "spearman": 0}
    widths = {"pearson": [], "spearman": []}
    undefined = 0
    for repeat in range(repeats):
        xy = rng.multivariate_normal([0.0, 0.0], covariance, size=points)
        alignment = pd.DataFrame(
            {"model": "m", "step": np.arange(points), "layer": 1, "overlap": xy[:, 0], "transfer_t": xy[:, 1]}
        )
        table = correlation_table(alignment, resamples=resamples, seed=seed + repeat, measures=["overlap"])
        row = table[(table["model"] == "m") & (table["finals"] == "included")].iloc[0]
        if np.isnan(row["pearson_ci_low"]):
            undefined += 1
            continue
        for name, truth in (("pearson", true_r), ("spearman", true_spearman)):
            low, high = row[f"{name}_ci_low"], row[f"{name}_ci_high"]
            hits[name] += bool(low <= truth <= high)
            widths[name].append(high - low)
    defined = repeats - undefined
    return {
        "points": points,
        "true_r": true_r,
        "repeats": repeats,
        "undefined": undefined,
        "pearson_coverage": hits["pearson"] / defined if defined else math.nan,
        "pearson_width": float(np.mean(widths["pearson"])) if defined else math.nan,
        "spearman_coverage": hits["spearman"] / defined if defined else math.nan,
        "spearman_width": float(np.mean(widths["spearman"])) if defined else math.nan,
    }


def pairs_of(languages: Sequence[str]) -> int:
    """Language pairs per attribute (the size of one Holm family)."""
    return len(list(itertools.combinations(languages, 2)))


# ----------------------------------------------------------------------------- alignment controls
# Where the attribute information sits, for the controls that tell the alignment measures apart:
# every language keeps it in the same planted neurons; spread over all neurons by one random rotation
# common to all languages (the same readout, no shared neuron); by a rotation of each language's own
# (no shared readout); or in each language's own neurons with its own class means (nothing shared).
CONDITIONS = ("shared_neurons", "shared_rotation", "own_rotations", "nothing_shared")


def random_rotation(width: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix, signs fixed by R's diagonal)."""
    q, r = np.linalg.qr(rng.normal(size=(width, width)))
    return q * np.sign(np.diag(r))


def own_rotations(
    setting: Setting, planted: Mapping[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Language -> an orthogonal [D, D] matrix of its own that carries each planted set (attribute ->
    neurons, the same in every language) into a subspace orthogonal to every other language's image of
    that set: no linear readout of one language's attribute reads another's.

    Independent Haar rotations do not give that: the images of one planted set under two of them share
    a random part of order sqrt(planted / D), a weak shared readout that retrieval detects more often
    than in `nothing_shared`. So each language's matrix is a permutation of the neurons, moving set a into
    block (j + a) mod B of B disjoint random blocks (B = max(languages, sets): no two languages share a
    set's block, no two sets of a language share one; the other neurons fill the rest at random),
    followed by one Haar rotation common to all languages.
    """
    names = list(planted)
    blocks = max(len(setting.languages), len(names))
    if blocks * setting.planted > setting.width:
        raise ValueError(f"own_rotations needs {blocks} x {setting.planted} neurons for disjoint blocks; "
                         f"the width is {setting.width}")
    block = rng.choice(setting.width, (blocks, setting.planted), replace=False)
    common = random_rotation(setting.width, rng)
    sources = np.concatenate([planted[name] for name in names])
    out = {}
    for j, lang in enumerate(setting.languages):
        targets = np.concatenate([block[(j + a) % blocks] for a in range(len(names))])
        destination = np.full(setting.width, -1)
        destination[sources] = targets
        rest = np.setdiff1d(np.arange(setting.width), sources)
        destination[rest] = rng.permutation(np.setdiff1d(np.arange(setting.width), targets))
        out[lang] = common[destination]  # the permutation matrix P[n, destination[n]] = 1 times `common`
    return out


def _rotations(condition: str, setting: Setting, rng: np.random.Generator) -> dict[str, np.ndarray | None]:
    """The shared rotation (drawn here) or none; own rotations are drawn once the planted neurons are."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown control condition {condition!r} (one of {', '.join(CONDITIONS)})")
    common = random_rotation(setting.width, rng) if condition == "shared_rotation" else None
    return dict.fromkeys(setting.languages, common)


def control_languages(
    condition: str, setting: Setting, rng: np.random.Generator
) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Language -> (activations [rows, D] float16, labels per attribute) under one condition.

    Unlike `synthetic_language`, the class means of an attribute's planted neurons are drawn once for
    all languages (a shared code), except under `nothing_shared`, where each language has its own
    neurons and its own means. The neurons' noise scales are the same in every language.
    """
    rotations = _rotations(condition, setting, rng)
    shared = condition != "nothing_shared"
    planted = plant(replace(setting, shared_share=1.0 if shared else 0.0), rng)
    if condition == "own_rotations":
        first = setting.languages[0]
        rotations = own_rotations(setting, {a: planted[a][first] for a in setting.attributes}, rng)
    scales = neuron_scales(setting, rng)
    code = {
        a: rng.normal(size=(len(ATTRIBUTES[a]), setting.planted)) * rng.uniform(0.5, 1.5, setting.planted)
        for a in setting.attributes
    }
    out = {}
    for lang in setting.languages:
        X = rng.normal(size=(setting.rows, setting.width)) * scales
        labels = {}
        for attribute in setting.attributes:
            shares = np.asarray(ATTRIBUTES[attribute])
            y = rng.choice(len(shares), setting.rows, p=shares / shares.sum())
            neurons = planted[attribute][lang]
            means = code[attribute] if shared else rng.normal(size=code[attribute].shape)
            X[:, neurons] += setting.signal * means[y] * scales[neurons]
            labels[attribute] = y
        if rotations[lang] is not None:
            X = X @ rotations[lang]
        out[lang] = (X.astype(np.float16), labels)
    return out


def control_sentences(
    condition: str, setting: Setting, sentences: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Language -> sentence vectors [sentences, D] of one parallel sample: row i of every language is a
    translation of row i. A sentence's content (a Gaussian vector of `setting.planted` values) sits in
    the planted neurons, placed and rotated as in `control_languages`; under `nothing_shared` each
    language's row i has content of its own."""
    rotations = _rotations(condition, setting, rng)
    shared = condition != "nothing_shared"
    neurons = rng.choice(setting.width, setting.planted, replace=False)
    if condition == "own_rotations":
        rotations = own_rotations(setting, {"content": neurons}, rng)
    scales = neuron_scales(setting, rng)
    content = rng.normal(size=(sentences, setting.planted))
    out = {}
    for lang in setting.languages:
        X = rng.normal(size=(sentences, setting.width)) * scales
        own = content if shared else rng.normal(size=content.shape)
        X[:, neurons if shared else rng.choice(setting.width, setting.planted, replace=False)] += (
            setting.signal * own * scales.max()
        )
        out[lang] = X @ rotations[lang] if rotations[lang] is not None else X
    return out


def run_control(
    condition: str, setting: Setting, seed: int, sentences: int = 200, permutations: int = 20,
    alpha: float = 0.05, workdir: str | Path | None = None,
) -> pd.DataFrame:
    """One seed of one condition through the stages: probe + `compute_overlap` (a pair is detected when
    its Holm-corrected p < alpha), `probe_transfer.transfer_table` (an ordered pair, p_value <= alpha)
    and `similarity.retrieval` over a parallel sample (a pair, retrieval_p <= alpha).

    One row per measure and unit (attribute and pair; pair for retrieval): `value`, its `null`
    (chance k/D, the permutation null's mean, 1/n) and `detected`.
    """
    from xlprobe.probe_transfer import load_treebank, transfer_table
    from xlprobe.similarity import retrieval

    rng = np.random.default_rng([seed, setting.width, CONDITIONS.index(condition)])
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        probe_paths, treebanks = [], []
        for language, (X, labels) in control_languages(condition, setting, rng).items():
            inputs = write_treebank(Path(tmp) / language, X, labels, rng)
            out = Path(tmp) / "probes" / f"{language}.json"
            probe_treebank(*inputs.values(), out, probe_config={**PROBE_CONFIG, "k": setting.k}, seed=seed,
                           labels={"treebank": language, "language": language}, progress=False)
            probe_paths.append(out)
            treebanks.append(load_treebank(language, language, *inputs.values()))
        overlap = compute_overlap(probe_paths, Path(tmp) / "overlap.tsv", k=setting.k, seed=seed)
        overlap = overlap[overlap["k"] == setting.k]
        rows += [{"measure": "overlap", "unit": f"{r.attribute}: {r.language_a}-{r.language_b}",
                  "value": r.overlap, "null": r.chance, "detected": r.p_holm < alpha}
                 for r in overlap.itertuples()]
        transfer = transfer_table(treebanks, permutations=permutations, seed=seed)
        rows += [{"measure": "probe_transfer", "unit": f"{r.attribute}: {r.language_a}->{r.language_b}",
                  "value": r.accuracy, "null": r.null_mean, "majority": r.majority_accuracy,
                  "detected": r.p_value <= alpha} for r in transfer.itertuples()]
    vectors = control_sentences(condition, setting, sentences, rng)
    for a, b in itertools.combinations(setting.languages, 2):
        result = retrieval(vectors[a], vectors[b], seed=seed)
        rows.append({"measure": "retrieval", "unit": f"{a}-{b}", "value": result["retrieval"],
                     "null": result["retrieval_null"], "detected": result["retrieval_p"] <= alpha})
    return pd.DataFrame(rows).assign(condition=condition, seed=seed)


def summarize_controls(frame: pd.DataFrame) -> pd.DataFrame:
    """Per measure and condition: units, seeds, mean value and null, and the share of units detected
    (the power where something is shared, the false-positive rate where nothing readable is)."""
    grouped = frame.groupby(["measure", "condition"], sort=False)
    summary = grouped.agg(seeds=("seed", "nunique"), units=("detected", "size"), value=("value", "mean"),
                          null=("null", "mean"), detected=("detected", "mean")).reset_index()
    order = {c: i for i, c in enumerate(CONDITIONS)}
    return summary.sort_values(["measure", "condition"], key=lambda s: s.map(order) if s.name == "condition" else s,
                               kind="stable").reset_index(drop=True)

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from results_layout import identified, record_point

from xlprobe.alignment import read_table, write_alignment_table
from xlprobe.correlation import write_correlations
from xlprobe.io import write_json, write_tsv
from xlprobe.overlap import overlap_table
from xlprobe.plots import (
    FIGURE_NAMES,
    plot_figures,
    plot_overlap_heatmaps,
    plot_overlap_vs_lm_loss,
    plot_overlap_vs_step,
    step_label,
    treebank_order,
)

NAMES = [
    "overlap_vs_step",
    "transfer_vs_step",
    "overlap_vs_transfer",
    "overlap_heatmaps",
    "overlap_vs_k",
    "overlap_vs_lm_loss",
    "overlap_over_chance_vs_step",
    "stability_vs_step",
    "measures_vs_transfer",
    "similarity_vs_step",
]


def synthetic_results(root, with_transfer=True):
    """Overlap, transfer and similarity files for two models whose overlap grows with the step."""
    rng = np.random.default_rng(0)
    languages = ["xa", "xb", "xc"]
    overlap, transfer, similarity = [], [], []
    for model, width, steps in (("tiny", 32, [0, 100, "final"]), ("small", 64, [0, 50, 100])):
        for i, step in enumerate(steps):
            shared = list(rng.choice(width, 6, replace=False))
            selections = {}
            for language in languages:
                own = [int(n) for n in rng.permutation(width) if n not in shared]
                selections[language] = {
                    "Number": [int(n) for n in shared[: 2 * i]] + own[: 6 - 2 * i],
                    **({"Tense": own[6:12]} if language != "xc" else {}),
                }
            path = root / f"overlap/{model}/{step}/layer2.tsv"
            own_language = {tb: tb for tb in selections}
            write_tsv(path, overlap_table(selections, width, k=6, languages=own_language, seed=0, random_draws=20))
            record_point(path, "overlap")
            overlap.append(path)
            if with_transfer:
                path = root / f"transfer/{model}/{step}/pos.tsv"
                write_tsv(
                    path,
                    identified(pd.DataFrame(
                        [("xa", "source", "f1", 0.9)]
                        + [
                            (lang, "target", "f1", 0.3 + 0.1 * i + rng.normal(0, 0.02))
                            for lang in languages[1:]
                        ],
                        columns=["language", "role", "metric", "value"],
                    ), path, "transfer"),
                )
                transfer.append(path)
                path = root / f"similarity/{model}/{step}.tsv"
                write_tsv(
                    path,
                    identified(pd.DataFrame(
                        [
                            ("xa", lang, layer, "last", 0.3 + 0.05 * i * layer, 10)
                            for lang in languages[1:]
                            for layer in (1, 2, 3)
                        ],
                        columns=["source", "target", "layer", "pooling", "cosine", "pairs"],
                    ), path, "similarity"),
                )
                similarity.append(path)
    # LM loss falls with the step; tiny's step 100 is broken (suspect), small's 100 repeats its 50
    checks = []
    for model, steps in (("tiny", [0, 100, "final"]), ("small", [0, 50, 100])):
        for i, step in enumerate(steps):
            loss = 9.0 if (model, step) == ("tiny", 100) else 6.0 - i
            sha = "same" if (model, step) in {("small", 50), ("small", 100)} else f"{model}{step}"
            path = root / f"lm_loss/{model}/{step}.json"
            write_json(path, {"model": model, "step": str(step), "lm_loss": loss,
                              "weights": {"model.safetensors": {"sha256": sha, "from": "file"}}})
            checks.append(path)
    write_alignment_table(
        overlap, transfer, similarity, root / "alignment.tsv", root / "alignment_attributes.tsv",
        check_paths=checks,
    )
    write_correlations(root / "alignment.tsv", root / "correlations.tsv", resamples=50, seed=0)
    return overlap, similarity


def outputs(root):
    return {name: (root / f"figures/{name}.png", root / f"figures/{name}.pdf") for name in NAMES}


def test_every_figure_is_written(tmp_path):
    overlap, similarity = synthetic_results(tmp_path)
    assert set(NAMES) == set(FIGURE_NAMES)
    plot_figures(
        tmp_path / "alignment.tsv",
        tmp_path / "alignment_attributes.tsv",
        tmp_path / "correlations.tsv",
        overlap,
        similarity,
        outputs(tmp_path),
    )
    for name, (png, pdf) in outputs(tmp_path).items():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert pdf.read_bytes()[:5] == b"%PDF-", name
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 300, name
        assert image[..., :3].std() > 0.05, f"{name} looks blank"  # drawn content, not a flat canvas
    assert not list((tmp_path / "figures").glob(".*"))  # no temporary files left behind


def test_figures_without_transfer_or_similarity(tmp_path):
    overlap, _ = synthetic_results(tmp_path, with_transfer=False)
    plot_figures(
        tmp_path / "alignment.tsv",
        tmp_path / "alignment_attributes.tsv",
        tmp_path / "correlations.tsv",
        overlap,
        [],
        {name: outputs(tmp_path)[name] for name in ("transfer_vs_step", "overlap_vs_transfer")},
    )
    assert all(
        path.stat().st_size > 0
        for name in ("transfer_vs_step", "overlap_vs_transfer")
        for path in outputs(tmp_path)[name]
    )


def test_unknown_figure_name(tmp_path):
    with pytest.raises(ValueError, match=r"unknown figure names \['pie_chart'\]"):
        plot_figures(
            tmp_path / "alignment.tsv",
            tmp_path / "alignment_attributes.tsv",
            tmp_path / "correlations.tsv",
            [],
            [],
            {"pie_chart": (tmp_path / "a.png", tmp_path / "a.pdf")},
        )


def test_step_labels():
    assert [step_label(s) for s in (0, 50, 1000, 600000, 1500, "final")] == [
        "0",
        "50",
        "1k",
        "600k",
        "1500",
        "final",
    ]


def test_treebank_order_recovers_config_order():
    # xa lacks Case and xb lacks Number: no single attribute lists all languages in order.
    first = pd.DataFrame(
        {"attribute": ["Case", "Number"], "treebank_a": ["xb", "xa"], "treebank_b": ["xc", "xc"]}
    )
    second = pd.DataFrame({"attribute": ["Case"], "treebank_a": ["xa"], "treebank_b": ["xb"]})
    assert treebank_order([first, second]) == ["xa", "xb", "xc"]


def marked(fig, marker_size):
    """The (x, y) of the points drawn with the duplicate (140) or suspect (110) mark, per axes."""
    return [[tuple(xy) for c in ax.collections if list(c.get_sizes()) == [marker_size] for xy in c.get_offsets()]
            for ax in fig.axes]


def test_figures_mark_duplicates_and_suspects(tmp_path):
    synthetic_results(tmp_path)
    alignment = read_table(tmp_path / "alignment.tsv")
    attributes = read_table(tmp_path / "alignment_attributes.tsv")
    row = alignment.set_index(["model", "step"])
    assert row.at[("tiny", 100), "suspect"] and row.at[("small", 100), "duplicate_of"] == 50
    fig = plot_overlap_vs_step(alignment, attributes)
    steps = [0, 50, 100, "final"]  # the ordinal axis of every model's steps
    # the mean panel: tiny's 100 crossed, small's 100 ringed, at their overlap; nothing else marked
    assert marked(fig, 110)[0] == [(steps.index(100), row.at[("tiny", 100), "overlap"])]
    assert marked(fig, 140)[0] == [(steps.index(100), row.at[("small", 100), "overlap"])]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "suspect: LM loss far above the earlier steps'" in legend and any("duplicate" in t for t in legend)
    fig = plot_overlap_vs_lm_loss(alignment)
    assert marked(fig, 110)[0] == [(9.0, row.at[("tiny", 100), "overlap"])]
    assert fig.axes[0].xaxis_inverted()
    # a loss that is not a number (inf in the table) has no place on the loss axis
    alignment.loc[(alignment["model"] == "tiny") & (alignment["step"] == 100), "lm_loss"] = np.inf
    fig = plot_overlap_vs_lm_loss(alignment)
    assert marked(fig, 110)[0] == [] and np.isfinite(fig.axes[0].get_xlim()).all()


def test_heatmaps_frame_same_language_pairs_apart():
    # zh and zh_cfl share a language: their cell (both halves) is framed as the reference, no other.
    selections = {"zh": {"N": [0, 1]}, "zh_cfl": {"N": [0, 2]}, "en": {"N": [3, 1]}}
    languages = {"zh": "zh", "zh_cfl": "zh", "en": "en"}
    frame = overlap_table(selections, 16, k=2, languages=languages, random_draws=5)
    fig = plot_overlap_heatmaps({("m", 1, 2): frame})
    framed = [p for p in fig.axes[0].patches if p.get_hatch() == "//"]
    assert sorted((int(p.get_x()), int(p.get_y())) for p in framed) == [(0, 1), (1, 0)]
    assert "within-language reference" in fig._suptitle.get_text()


def test_the_workflow_asks_for_every_figure_the_plotter_draws(repo):
    """The resolved config lists the plotter's figures; similarity_vs_step only with a similarity section."""
    import yaml

    from xlprobe.resolved_config import resolve_config

    config = yaml.safe_load((repo / "config" / "demo.yaml").read_text())
    assert config.get("similarity")
    assert resolve_config(dict(config), workdir=repo).figures == list(FIGURE_NAMES)
    config.pop("similarity")
    assert resolve_config(config, workdir=repo).figures == [n for n in FIGURE_NAMES if n != "similarity_vs_step"]

def test_every_figure_has_its_report_caption(repo):
    """`snakemake --report` fails on a figure without report/<name>.rst; this finds it in a second."""
    missing = [name for name in FIGURE_NAMES if not (repo / "report" / f"{name}.rst").is_file()]
    assert not missing, f"no caption in report/ for {missing}"

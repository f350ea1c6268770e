import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from results_layout import record_point

from xlprobe.alignment import write_alignment_table
from xlprobe.correlation import write_correlations
from xlprobe.io import write_tsv
from xlprobe.overlap import overlap_table
from xlprobe.plots import FIGURE_NAMES, plot_figures, plot_overlap_heatmaps, step_label, treebank_order

NAMES = [
    "overlap_vs_step",
    "transfer_vs_step",
    "overlap_vs_transfer",
    "overlap_heatmaps",
    "overlap_vs_k",
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
                    pd.DataFrame(
                        [("xa", "source", "f1", 0.9)]
                        + [
                            (lang, "target", "f1", 0.3 + 0.1 * i + rng.normal(0, 0.02))
                            for lang in languages[1:]
                        ],
                        columns=["language", "role", "metric", "value"],
                    ),
                )
                record_point(path, "transfer")
                transfer.append(path)
                path = root / f"similarity/{model}/{step}.tsv"
                write_tsv(
                    path,
                    pd.DataFrame(
                        [
                            ("xa", lang, layer, "last", 0.3 + 0.05 * i * layer, 10)
                            for lang in languages[1:]
                            for layer in (1, 2, 3)
                        ],
                        columns=["source", "target", "layer", "pooling", "cosine", "pairs"],
                    ),
                )
                record_point(path, "similarity")
                similarity.append(path)
    write_alignment_table(
        overlap, transfer, similarity, root / "alignment.tsv", root / "alignment_attributes.tsv"
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
    import ast
    import re

    text = (repo / "rules" / "common.smk").read_text()
    listed = ast.literal_eval(re.search(r"^FIGURES = (\[.*?\])", text, re.MULTILINE | re.DOTALL).group(1))
    appended = re.findall(r'^    FIGURES\.append\("(\w+)"\)', text, re.MULTILINE)
    assert [*listed, *appended] == list(FIGURE_NAMES)

"""The workflow on real UD v2.1 treebanks (../shared/data/ud-2.1 as ud_root) with a tiny BLOOM model as
the checkpoints, end to end. Skips where the shared data is absent."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_runs import planned_jobs, planned_wildcards, snakemake

from xlprobe.demo.pretrain import init_model, train_tokenizer
from xlprobe.wordtable import conllu_files

REPO = Path(__file__).resolve().parents[1]
TREEBANKS = {"mr": "UD_Marathi", "ta": "UD_Tamil", "vi": "UD_Vietnamese"}
pytestmark = pytest.mark.slow


def tiny_checkpoints(root: Path, ud_root: Path) -> str:
    """Two 'steps' of a tiny BLOOM (different random weights) with a tokenizer trained on the treebanks."""
    root.mkdir(parents=True)
    text = root / "text.txt"
    lines = []
    for folder in TREEBANKS.values():
        for path in conllu_files([ud_root / folder]):
            lines += [line[len("# text = "):] for line in Path(path).read_text().splitlines()
                      if line.startswith("# text = ")]
    text.write_text("\n".join(lines) + "\n")
    tokenizer = train_tokenizer([text], root / "tokenizer", vocab_size=2000)
    for step, seed in (("0", 0), ("1", 1)):
        model = init_model(tokenizer, hidden_size=32, n_layer=2, n_head=2, seed=seed)
        model.save_pretrained(root / step)
        tokenizer.save_pretrained(root / step)
    return str(root / "{step}")


def ud_root_with_a_tiny_treebank(shared: Path, root: Path) -> Path:
    """The shared treebanks (linked) plus UD_Tiny: 20 Vietnamese sentences, too few to probe anything."""
    root.mkdir()
    for folder in TREEBANKS.values():
        (root / folder).symlink_to(shared / folder)
    sentences = (shared / "UD_Vietnamese" / "vi-ud-dev.conllu").read_text().split("\n\n")[:20]
    (root / "UD_Tiny").mkdir()
    (root / "UD_Tiny" / "vi_few-ud-dev.conllu").write_text("\n\n".join(sentences) + "\n\n")
    return root


def test_workflow_runs_on_real_treebanks(shared_data, tmp_path):
    ud_root = ud_root_with_a_tiny_treebank(shared_data / "ud-2.1", tmp_path / "ud")
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    del config["demo"], config["similarity"]
    config.update(
        results="results/ud",
        ud_root=str(ud_root),
        treebanks={
            **{tb: {"folder": folder, "language": tb} for tb, folder in TREEBANKS.items()},
            "vi_few": {"folder": "UD_Tiny", "language": "vi"},
        },
        models={"tiny": {"source": "local", "path": tiny_checkpoints(tmp_path / "ckpt", ud_root),
                         "steps": [0, 1]}},
    )
    config["words"]["min_count"] = 10
    config["transfer"]["tasks"] = {
        "pos": {"type": "udpos", "format": "conllu", "source": "ta", "targets": ["mr", "vi"]}
    }
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()

    # Before the word tables exist, a dry run lists every treebank's dumps (an upper bound) ...
    planned = snakemake(workdir, "-n", configfile=configfile)
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert {job["treebank"] for job in planned_wildcards(planned, "dump_activations")} == {*TREEBANKS, "vi_few"}
    # ... and the run skips the one left with nothing to probe, saying so.
    done = snakemake(workdir, "--cores", "2", configfile=configfile)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "treebank vi_few: no attribute to probe" in done.stderr

    results = workdir / "results/ud"
    for tb in TREEBANKS:
        words = pd.read_csv(results / f"words/{tb}.tsv", sep="\t", keep_default_na=False)
        assert set(words["split"]) == {"train", "dev", "test"}
        probe = json.loads((results / f"probes/tiny/1/layer2/{tb}.json").read_text())
        assert probe["dimension"] == 32
        assert "Part of Speech" in probe["attributes"], tb
        assert len(probe["attributes"]["Part of Speech"]["selected"]) == config["probe"]["k"]
    overlap = pd.read_csv(results / "overlap/tiny/1/layer2.tsv", sep="\t")
    assert {"mr", "ta", "vi"} >= set(overlap["treebank_a"]) | set(overlap["treebank_b"])
    transfer = pd.read_csv(results / "transfer/tiny/1/pos.tsv", sep="\t")
    assert set(transfer.loc[transfer["role"] == "target", "language"]) == {"mr", "vi"}
    assert transfer["value"].between(0, 1).all()
    alignment = pd.read_csv(results / "alignment.tsv", sep="\t")
    assert len(alignment) == 2

    few = pd.read_csv(results / "words/vi_few.attributes.tsv", sep="\t")
    assert len(few) > 0 and not few["kept"].any()
    assert not list(results.glob("activations/*/*/vi_few")) and not list(results.glob("probes/**/vi_few.json"))
    assert "vi_few" not in set(overlap["treebank_a"]) | set(overlap["treebank_b"])
    again = snakemake(workdir, "-n", configfile=configfile)
    assert again.returncode == 0 and planned_jobs(again) == {}, again.stdout[-3000:]

"""Are two languages aligned in some direction, even where their top-k neurons are not? A linear
classifier (multinomial logistic regression, L-BFGS) trained on one language's word vectors, each
neuron standardized per language, predicts the attribute of another language's words; accuracy above
the target's majority class means the attribute is read the same way in both.

    python benchmarks/crosslingual_linear.py ACTIVATIONS_DIR WORDS_DIR LAYER [TREEBANK ...]

ACTIVATIONS_DIR holds <treebank>/layer<L>.npy (a step's folder under results/activations/<model>/),
WORDS_DIR the word tables (results/words/). Prints, per attribute, train language -> accuracy on each
language (the diagonal is on the training language's own words), and each language's majority class.
This is the diagnostic behind the README's paragraph on what the demo does and does not show.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xlprobe.wordtable import read_word_table

ATTRIBUTES = ("Part of Speech", "Number", "Person", "Tense", "Case")


def fit(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def standardized(words: pd.DataFrame, vectors: np.ndarray, attribute: str, values: list[str]):
    rows = words[attribute].isin(values).to_numpy()
    x = vectors[rows].astype(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    y = pd.Categorical(words.loc[rows, attribute], categories=values).codes.astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def main(activations: Path, words_dir: Path, layer: int, treebanks: list[str]) -> None:
    torch.manual_seed(0)
    words = {tb: read_word_table(words_dir / f"{tb}.tsv") for tb in treebanks}
    vectors = {tb: np.load(activations / tb / f"layer{layer}.npy") for tb in treebanks}
    for attribute in ATTRIBUTES:
        having = [tb for tb in treebanks if attribute in words[tb]]
        if len(having) < 2:
            continue
        values = sorted(set.intersection(*(set(words[tb][attribute].dropna()) - {"_", ""} for tb in having)))
        if len(values) < 2:
            continue
        data = {tb: standardized(words[tb], vectors[tb], attribute, values) for tb in having}
        majority = {tb: np.bincount(y.numpy()).max() / len(y) for tb, (_, y) in data.items()}
        print(f"{attribute} {values}; majority class: "
              + " ".join(f"{tb} {share:.2f}" for tb, share in majority.items()))
        for source in having:
            weight, bias = fit(*data[source], len(values))
            scores = [f"{tb} {((x @ weight + bias).argmax(1) == y).float().mean():.2f}" for tb, (x, y) in data.items()]
            print(f"  train {source} -> " + " ".join(scores))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    chosen = sys.argv[4:] or sorted(p.name for p in Path(sys.argv[1]).iterdir() if p.is_dir())
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), chosen)

"""Transfer metrics: accuracy, and the seqeval F1 that XTREME reports for part-of-speech tagging.

XTREME scores UD-POS with `seqeval.metrics.f1_score` on raw UPOS tags. seqeval reads a tag's first
character as its BIOES prefix and the rest as the chunk type ("NOUN" -> prefix "N", type "OUN"), so
runs of the same tag merge into one chunk, and SCONJ/SYM ("S" = single) always close their chunk.
We reproduce that reading here (seqeval needs scikit-learn, which this project does not otherwise
use); `tag_accuracy` is the plain per-word score beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

_OUTSIDE = {"O", "."}


def _prefix_and_type(tag: str) -> tuple[str, str]:
    # seqeval's default (non-suffix) reading of a tag.
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _closes(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev not in _OUTSIDE and prev_type != cur_type


def _opens(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    if cur in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and cur in ("E", "I"):
        return True
    return cur not in _OUTSIDE and prev_type != cur_type


def seqeval_chunks(sentences: Sequence[Sequence[str]]) -> set[tuple[str, int, int]]:
    """(type, first, last) chunks of the sentences laid end to end with an "O" after each, as seqeval does."""
    flat = [tag for sentence in sentences for tag in [*sentence, "O"]] + ["O"]
    chunks = set()
    prev, prev_type, start = "O", "", 0
    for i, tag in enumerate(flat):
        cur, cur_type = _prefix_and_type(tag)
        if _closes(prev, prev_type, cur, cur_type):
            chunks.add((prev_type, start, i - 1))
        if _opens(prev, prev_type, cur, cur_type):
            start = i
        prev, prev_type = cur, cur_type
    return chunks


def seqeval_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Micro-averaged chunk F1 (seqeval's `f1_score` default), 0 where undefined."""
    _check_aligned(gold, predicted)
    true, pred = seqeval_chunks(gold), seqeval_chunks(predicted)
    hits = len(true & pred)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(pred), hits / len(true)
    return 2 * precision * recall / (precision + recall)


def tag_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Share of words whose predicted tag is the gold tag."""
    _check_aligned(gold, predicted)
    pairs = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    if not pairs:
        raise ValueError("no words to score")
    return sum(g == p for g, p in pairs) / len(pairs)


def accuracy(gold: Sequence, predicted: Sequence) -> float:
    if len(gold) != len(predicted) or not gold:
        raise ValueError(f"cannot score {len(predicted)} predictions against {len(gold)} labels")
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def _check_aligned(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tag sequences differ in shape")

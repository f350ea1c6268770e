"""Time the English EWT 2.1 treebank (train+dev+test, ~254k tokens) to its word table on one core.

Goal: under 30 s.   python benchmarks/bench_word_table.py [UD_ROOT]   (default ../shared/data/ud-2.1)
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from xlprobe.wordtable import build_word_table

GOAL_S = 30.0


def main() -> int:
    default_root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ud-2.1"
    ud_root = Path(sys.argv[1]) if len(sys.argv) > 1 else default_root
    files = sorted(str(p) for p in (ud_root / "UD_English").glob("*.conllu"))
    if not files:
        print(f"no UD_English/*.conllu under {ud_root}")
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    words = {"split": {"train": 0.8, "dev": 0.1, "test": 0.1}, "min_count": 20}
    with tempfile.TemporaryDirectory() as out:
        wall, cpu = time.perf_counter(), time.process_time()
        summary = build_word_table(
            files, f"{out}/en.tsv", f"{out}/en.attributes.tsv", {"id": "en", "language": "en"}, words, seed=0
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"EWT 2.1: {summary['tokens']} tokens, {summary['sentences']} sentences")
    print(
        f"wall {wall:.1f} s, CPU {cpu:.1f} s, {summary['tokens'] / wall:,.0f} tokens/s (goal < {GOAL_S:.0f} s)"
    )
    return 0 if wall < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())

"""After a demo run: time per rule (from the rules' benchmark files) and the probes' part-of-speech
dev MI at each checkpoint, per model and language.

    python benchmarks/demo_summary.py [results/demo]
"""

import json
import sys
from pathlib import Path

import pandas as pd


def rule_times(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(results / "benchmarks").parts[0]
        rows.append({"rule": rule, "s": float(pd.read_csv(path, sep="\t")["s"].iloc[0])})
    frame = pd.DataFrame(rows)
    return frame.groupby("rule")["s"].agg(["count", "sum", "mean", "max"]).round(1)


def pos_mi(results: Path, attribute: str = "Part of Speech") -> pd.DataFrame:
    rows = []
    for path in sorted((results / "probes").rglob("*.json")):
        result = json.loads(path.read_text())
        scores = result["attributes"].get(attribute)
        if scores is None:
            continue
        rows.append({
            "model": result["model"], "step": int(result["step"]), "layer": result["layer"],
            "treebank": result["treebank"], f"dev_mi@{len(scores['selected'])}": scores["dev_score"][-1],
            "test_mi": scores["test_mi"][-1], "mask_family_dev_mi": scores["mask_family"]["dev_mi"],
        })
    return pd.DataFrame(rows).sort_values(["model", "treebank", "step"]).round(3)


if __name__ == "__main__":
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results/demo")
    pd.set_option("display.width", 160)
    print(rule_times(results).to_string(), "\n")
    table = pos_mi(results)
    print(table.to_string(index=False), "\n")
    first, last = table["step"].min(), table["step"].max()
    key = next(c for c in table.columns if c.startswith("dev_mi@"))
    wide = table.pivot_table(index=["model", "treebank"], columns="step", values=key)
    wide["gain"] = wide[last] - wide[first]
    print(f"part-of-speech {key} at step {first} vs {last}:\n{wide.round(3).to_string()}")

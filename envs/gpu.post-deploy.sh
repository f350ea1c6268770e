#!/usr/bin/env bash
# Snakemake runs this inside the new conda environment of envs/gpu.yaml, once, right after creating it,
# from its working directory. It installs this project there: editable, so the environment follows the
# checkout, and without dependencies, which the environment file brings. Run Snakemake from the
# repository root, or set XLPROBE_REPO to the checkout.
set -euo pipefail
repo=${XLPROBE_REPO:-$PWD}
if ! grep -qs '^name = "xlprobe"' "$repo/pyproject.toml"; then
    echo "post-deploy: $repo is not the xlprobe checkout; run Snakemake from it or set XLPROBE_REPO" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation --editable "$repo"
python -c 'import xlprobe; print("post-deploy: xlprobe from", xlprobe.__file__)'

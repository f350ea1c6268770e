"""Tests without ../shared/data: only tests of real files skip, and in CI (CI=true) they fail instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The tests that read real data and cannot have it generated: file formats and real treebanks.
REAL_FILES = {
    "test_similarity.py::test_tatoeba_and_pud_pairs_are_aligned",
    "test_transfer.py::test_xnli_end_to_end",
    "test_transfer.py::test_udpos_end_to_end",
}


def pytest_without_shared_data(tmp_path: Path, *args: str, ci: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "XLPROBE_SHARED_DATA": str(tmp_path / "absent")}
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False,
    )


def outcomes(done: subprocess.CompletedProcess) -> dict[str, int]:
    summary = done.stdout.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)}


@pytest.mark.slow  # a pytest session in a subprocess
def test_in_ci_a_test_needing_the_shared_data_fails_instead_of_skipping(tmp_path):
    real = "tests/test_treebank.py::test_real_french_treebank_counts"
    assert outcomes(pytest_without_shared_data(tmp_path, real, ci=False)) == {"skipped": 1}
    done = pytest_without_shared_data(tmp_path, real, ci=True)
    assert outcomes(done) == {"error": 1}, done.stdout[-2000:]
    assert "CI=true" in done.stdout


@pytest.mark.slow  # a pytest session of two test modules in a subprocess
def test_model_tests_run_without_the_shared_data(tmp_path):
    # The tiny model and its text come from the synthetic generator: only real-file tests skip.
    done = pytest_without_shared_data(tmp_path, "tests/test_similarity.py", "tests/test_transfer.py", ci=False)
    skipped = set(re.findall(r"^tests/(\S+) SKIPPED", done.stdout, flags=re.MULTILINE))
    assert skipped == REAL_FILES, done.stdout[-3000:]
    assert set(outcomes(done)) == {"passed", "skipped"}, done.stdout[-3000:]

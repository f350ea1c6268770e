"""The local hub server (scripts/hub-server, olah) from tests, and Python run against it in a subprocess.

huggingface_hub and datasets read HF_ENDPOINT and the offline switches when they are imported, so code
that talks to the server runs in a fresh interpreter with its own environment, as a workflow job does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "hub-server"
# An endpoint nobody listens on: a job on a compute node without network.
NO_NETWORK = "http://127.0.0.1:9"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalHub:
    """An olah server on 127.0.0.1 serving the repos that tests/localhub.py builds in `directory`."""

    def __init__(self, directory: Path, shared_data: Path):
        self.directory = directory
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.mirrors = directory / "mirrors"
        self._env = {**os.environ, "PYTHON": sys.executable, "XLPROBE_SHARED_DATA": str(shared_data)}

    def _script(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *args], env=self._env, capture_output=True, text=True,
                              timeout=300, check=False)

    def start(self) -> None:
        done = self._script("start", str(self.directory), str(self.port))
        assert done.returncode == 0, done.stderr

    def stop(self) -> None:
        done = self._script("stop", str(self.directory))
        assert done.returncode == 0, done.stderr

    def running(self) -> bool:
        return self._script("status", str(self.directory)).returncode == 0

    def env(self, offline: bool = False, cache: Path | None = None) -> dict[str, str]:
        """The environment of a process that uses this hub: online, or offline with no network at all."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env["HF_ENDPOINT"] = NO_NETWORK if offline else self.endpoint
        if offline:
            env["HF_HUB_OFFLINE"] = env["HF_DATASETS_OFFLINE"] = "1"
        if cache is not None:
            env["HF_HOME"] = str(cache / "home")  # nothing reaches the user's own cache
        env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        return env

    def git(self, repo_id: str, *args: str, kind: str = "model") -> bytes:
        """`git <args>` in a served repo (what the server serves, read independently of it)."""
        from localhub import repo_dir

        return subprocess.run(["git", "-C", str(repo_dir(self.mirrors, repo_id, kind)), *args],
                              capture_output=True, check=True).stdout


def run_python(code: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter; whatever it prints as its last line is parsed as JSON into
    `.result` when the run succeeds."""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=REPO)
    done.result = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    return done

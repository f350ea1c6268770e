"""Hub repositories on disk, for a local hub server (olah) that tests and trials run against.

Test scaffolding: it reads the project's shared data and is no part of the xlprobe package; the tests
import it from tests/ and scripts/hub-server runs it as a script.

olah serves git repositories under `<mirrors>/models/<org>/<name>` and `<mirrors>/datasets/<org>/<name>`
as hub repos, each git branch a revision (see ../shared/notes/local-hub.md). This module writes them:

- tiny BLOOM-architecture checkpoints laid out like bigscience's: an `-intermediate` repo with one
  `global_step{N}` branch per step, the released model on `main` of a repo of its own (with both weight
  formats and a model card, as the real ones have), and a tokenizer repo;
- the datasets the paper reads from the hub, with the real repos' ids, config names, split names,
  fields and `ClassLabel` features (`facebook/xnli`, `google/xtreme` udpos.<Language>,
  `Helsinki-NLP/opus-100`), as parquet with the README `configs:` header, filled from the shared data.

`add_step` adds one more `global_step{N}` branch to a built repo (a step published later);
`commit_checkpoint` puts any architecture's checkpoint on a branch of any name (other families).
scripts/hub-server builds the repos (`python tests/localhub.py build`) and serves them.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

ORG = "tiny-bigscience"
TOKENIZER_REPO = f"{ORG}/bloom"
XNLI_REPO, XTREME_REPO, OPUS_REPO = "facebook/xnli", "google/xtreme", "Helsinki-NLP/opus-100"
# Fixed author and dates: the same build gives the same commits.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "xlprobe", "GIT_AUTHOR_EMAIL": "xlprobe@localhost",
    "GIT_COMMITTER_NAME": "xlprobe", "GIT_COMMITTER_EMAIL": "xlprobe@localhost",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}
# Shared-data codes (Tatoeba's ISO 639-3) of the OPUS-100 pairs built here, all with English.
_TATOEBA = {"ar": "ara", "ca": "cat", "eu": "eus", "es": "spa", "fr": "fra", "hi": "hin", "mr": "mar",
            "pt": "por", "ta": "tam", "ur": "urd", "vi": "vie", "zh": "cmn"}


@dataclass(frozen=True)
class TinyBloom:
    """One tiny model family: `<org>/<name>-intermediate` (a branch per step) and `<org>/<name>` (final)."""

    name: str
    steps: tuple[int, ...] = (1000, 2000)
    hidden_size: int = 32
    n_layer: int = 2
    n_head: int = 2
    org: str = ORG
    # Weights from a short pre-training on the served text (xlprobe.demo.pretrain, this many updates,
    # the steps' checkpoints evenly spaced, the final model at the end) instead of random ones: the LM
    # loss then falls with the step, and a scrambled step stands out. 0: random weights.
    train_steps: int = 0
    # (step, earlier step): the step's branch republishes the earlier step's weights (as public reports
    # say bloom-560m-intermediate's global_step500000 does global_step10000's).
    same_weights: tuple[tuple[int, int], ...] = ()
    # Steps whose branch holds their checkpoint's weights shuffled (`scramble`): broken checkpoints.
    scrambled: tuple[int, ...] = ()
    # (step, factor): the step's branch holds its checkpoint's weights multiplied by `factor` (`scale`):
    # a broken checkpoint whose weight files still look plausible.
    scaled: tuple[tuple[int, float], ...] = ()

    @property
    def intermediate_repo(self) -> str:
        return f"{self.org}/{self.name}-intermediate"

    @property
    def final_repo(self) -> str:
        return f"{self.org}/{self.name}"


# bloom-32's global_step2000 holds global_step1000's weights; bloom-48 is trained and its global_step2000
# is scrambled: the checkpoint checks (xlprobe.weights, xlprobe.lm_loss) must flag both.
DEFAULT_MODELS = (
    TinyBloom("bloom-32", hidden_size=32, same_weights=((2000, 1000),)),
    TinyBloom("bloom-48", hidden_size=48, train_steps=300, scrambled=(2000,)),
)

# Series for the checkpoint checks (tests/test_checks_hub.py, benchmarks/checkpoint_checks.py), the same
# short training each: step 40's weight matrices multiplied by 30 and step 80 republishing step 60; two
# neighbouring steps scrambled; nothing broken. Built on demand into a running hub (`add_models`).
CHECK_STEPS = (0, 20, 40, 60, 80)
CHECK_MODELS = (
    TinyBloom("bloom-x30", hidden_size=48, steps=CHECK_STEPS, train_steps=300, scaled=((40, 30.0),),
              same_weights=((80, 60),)),
    TinyBloom("bloom-adjacent", hidden_size=48, steps=CHECK_STEPS, train_steps=300, scrambled=(40, 60)),
    TinyBloom("bloom-healthy", hidden_size=48, steps=CHECK_STEPS, train_steps=300),
)


# ----------------------------------------------------------------------------- git
def repo_dir(mirrors: str | os.PathLike, repo_id: str, kind: str = "model") -> Path:
    """Where olah looks for a repo: <mirrors>/models/<org>/<name> or <mirrors>/datasets/<org>/<name>."""
    return Path(mirrors, "datasets" if kind == "dataset" else "models", repo_id)


def _git(directory: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                          env={**os.environ, **_GIT_ENV}, check=False)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} in {directory}: {done.stderr.strip()}")
    return done.stdout.strip()


def commit_files(directory: str | os.PathLike, branch: str, files: dict[str, bytes], message: str,
                 parent: str = "main") -> str:
    """Make `branch` of the git repo at `directory` hold exactly `files` (path -> content); the commit id.

    The repo is created where missing. A new branch starts from `parent` where that exists.
    Files are plain git blobs: olah serves them without LFS.
    """
    directory = Path(directory)
    if not (directory / ".git").is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        _git(directory, "init", "-q", "-b", "main")
    branches = _git(directory, "branch", "--format=%(refname:short)").split()
    if branch in branches:
        _git(directory, "checkout", "-q", branch)
    elif parent in branches:
        _git(directory, "checkout", "-q", "-b", branch, parent)
    elif branches:
        _git(directory, "checkout", "-q", "--orphan", branch)
    _git(directory, "rm", "-rq", "--ignore-unmatch", ".")
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    _git(directory, "add", "-A")
    _git(directory, "commit", "-q", "--allow-empty", "-m", message)
    return _git(directory, "rev-parse", "HEAD")


def _folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- models
def _card(title: str, text: str) -> bytes:
    return f"---\nlicense: mit\n---\n# {title}\n\n{text}\n".encode()


def build_tokenizer(text_lines: Iterable[str], out_dir: Path, vocab_size: int = 500):
    """A byte-level BPE tokenizer (BLOOM's kind) trained with `tokenizers` on the given lines."""
    from xlprobe.demo.pretrain import train_tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    text = out_dir.parent / "tokenizer-text.txt"
    text.write_text("\n".join(text_lines) + "\n", encoding="utf-8")
    return train_tokenizer([text], out_dir, vocab_size=vocab_size)


def build_tokenizer_repo(mirrors: str | os.PathLike, tokenizer, repo_id: str = TOKENIZER_REPO) -> str:
    """The tokenizer repo (bigscience/bloom's role): tokenizer files, a config, a model card."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        files = _folder_files(Path(tmp))
    files["config.json"] = b'{"model_type": "bloom"}\n'
    files["README.md"] = _card(repo_id, "Tokenizer of the tiny test models.")
    return commit_files(repo_dir(mirrors, repo_id), "main", files, "tokenizer")


def _model_files(tokenizer, spec: TinyBloom, seed: int, both_formats: bool, model=None) -> dict[str, bytes]:
    """A checkpoint's files: `model`'s weights, or random ones seeded by `seed`."""
    import torch

    from xlprobe.demo.pretrain import init_model

    if model is None:
        model = init_model(tokenizer, hidden_size=spec.hidden_size, n_layer=spec.n_layer, n_head=spec.n_head,
                           seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)  # config.json, model.safetensors
        tokenizer.save_pretrained(tmp)
        if both_formats:
            torch.save(model.state_dict(), Path(tmp, "pytorch_model.bin"))
        files = _folder_files(Path(tmp))
    files["README.md"] = _card(spec.name, f"Tiny BLOOM-architecture test model (seed {seed}).")
    return files


def commit_checkpoint(mirrors: str | os.PathLike, repo_id: str, branch: str, model, tokenizer) -> str:
    """A branch of a model repo holding `model` (any transformers architecture) and its tokenizer, as
    the families' repos lay out their checkpoints (Pythia's step1000, OLMo-2's stage1-step1000-tokens5B)."""
    directory = repo_dir(mirrors, repo_id)
    if not (directory / ".git").is_dir():
        commit_files(directory, "main", {"README.md": _card(repo_id, "Intermediate checkpoints as branches.")}, "card")
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = _folder_files(Path(tmp))
    files["README.md"] = _card(repo_id, f"Tiny {model.config.model_type} test model, branch {branch}.")
    return commit_files(directory, branch, files, branch)


def served_tokenizer(mirrors: str | os.PathLike, repo_id: str = TOKENIZER_REPO):
    """The tokenizer a built tokenizer repo holds (for `add_step` on repos built earlier)."""
    from transformers import AutoTokenizer

    directory = repo_dir(mirrors, repo_id)
    _git(directory, "checkout", "-q", "main")
    return AutoTokenizer.from_pretrained(directory)


def add_step(mirrors: str | os.PathLike, spec: TinyBloom, tokenizer, step: int,
             folder: str | os.PathLike | None = None, seed: int | None = None) -> str:
    """A `global_step{step}` branch of the intermediate repo: random weights seeded by `seed` (default the
    step), or the files of a checkpoint `folder` (one trained by xlprobe.demo.pretrain, or `scramble`d)."""
    directory = repo_dir(mirrors, spec.intermediate_repo)
    if not (directory / ".git").is_dir():
        commit_files(directory, "main", {"README.md": _card(spec.intermediate_repo, "Intermediate checkpoints: "
                                                            "one global_step{N} branch per step.")}, "card")
    files = _folder_files(Path(folder)) if folder else _model_files(tokenizer, spec, step if seed is None else seed, False)
    return commit_files(directory, f"global_step{step}", files, f"step {step}")


def _rewrite_weights(folder: str | os.PathLike, out: str | os.PathLike, change) -> Path:
    """A copy of the checkpoint in `folder` with `change(parameter)` applied to every weight tensor in place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for parameter in model.parameters():
            change(parameter)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return Path(out)


def scramble(folder: str | os.PathLike, out: str | os.PathLike, seed: int = 0) -> Path:
    """A copy of the checkpoint in `folder` whose every weight tensor has its entries shuffled (seeded):
    the shapes and value distribution of the original, none of its function (a broken checkpoint)."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def shuffle(parameter):
        flat = parameter.view(-1)
        flat.copy_(flat[torch.randperm(flat.numel(), generator=generator)])

    return _rewrite_weights(folder, out, shuffle)


def scale(folder: str | os.PathLike, out: str | os.PathLike, factor: float) -> Path:
    """A copy of the checkpoint in `folder` with its weight matrices (embeddings, linear layers) multiplied
    by `factor`: a broken checkpoint whose hidden states stay within float16 (its LayerNorms and biases
    are kept, so each block's input is still normalized), whose predictions are confidently wrong."""
    return _rewrite_weights(folder, out, lambda parameter: parameter.mul_(factor) if parameter.dim() >= 2 else None)


def _trained(spec: TinyBloom, tokenizer, text_lines: list[str], out: Path) -> list[Path]:
    """Checkpoint folders of a short pre-training, one per step then the final model's."""
    import torch

    from xlprobe.demo.pretrain import pretrain

    tokenizer.save_pretrained(out / "tokenizer")
    text = out / "text.txt"
    text.write_text("\n".join(text_lines) + "\n", encoding="utf-8")
    n = len(spec.steps)
    saves = [spec.train_steps * (i + 1) // (n + 1) for i in range(n)] + [spec.train_steps]
    # One thread: a model this small trains 20x slower on a busy machine with torch's default threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain(out / "tokenizer", [text], out / "trained", hidden_size=spec.hidden_size, n_layer=spec.n_layer,
                 n_head=spec.n_head, train_steps=spec.train_steps, save_steps=saves, batch_size=8, seq_len=32,
                 lr=5e-3)
    finally:
        torch.set_num_threads(threads)
    return [out / "trained" / str(save) for save in saves]


def build_model_repos(mirrors: str | os.PathLike, spec: TinyBloom, tokenizer,
                      text_lines: list[str] | None = None) -> dict[str, str]:
    """The intermediate repo (a branch per step) and the final repo (main); commit id per revision.

    `text_lines`: the pre-training text of a spec with `train_steps`.
    """
    from transformers import AutoModelForCausalLM

    same = dict(spec.same_weights)
    commits = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = _trained(spec, tokenizer, text_lines or [], Path(tmp)) if spec.train_steps else []
        folder_of = dict(zip(spec.steps, folders))
        factors = dict(spec.scaled)
        for step in spec.steps:
            source = same.get(step, step)  # the step whose weights this branch holds
            folder = folder_of.get(source)
            if (step in spec.scrambled or step in factors) and folder is None:
                # random weights, as the branch would hold, then broken
                folder = Path(tmp, "random", str(source))
                for name, content in _model_files(tokenizer, spec, source, False).items():
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_bytes(content)
            if step in spec.scrambled:
                folder = scramble(folder, Path(tmp, "scrambled", str(step)), seed=step)
            if step in factors:
                folder = scale(folder, Path(tmp, "scaled", str(step)), factors[step])
            commits[f"global_step{step}"] = add_step(mirrors, spec, tokenizer, step, folder, seed=source)
        model = AutoModelForCausalLM.from_pretrained(folders[-1]) if folders else None
        final = _model_files(tokenizer, spec, seed=10**6, both_formats=True, model=model)
    commits["final"] = commit_files(repo_dir(mirrors, spec.final_repo), "main", final, "final model")
    return commits


def add_models(mirrors: str | os.PathLike, specs: Iterable[TinyBloom], data: str | os.PathLike) -> None:
    """The repos of `specs` in a built hub (its tokenizer, its text from the shared `data`), where missing."""
    tokenizer = served_tokenizer(mirrors)
    for spec in specs:
        if not repo_dir(mirrors, spec.intermediate_repo).is_dir():
            build_model_repos(mirrors, spec, tokenizer, tokenizer_text(Path(data)))


def cut_treebanks(ud_root: str | os.PathLike, out: str | os.PathLike, treebanks: dict[str, Any],
                  sentences: int = 120) -> Path:
    """A UD root at `out` with the config `treebanks`' files from `ud_root`, each cut to its first
    `sentences` sentences (runs against the local hub in minutes)."""
    from xlprobe.wordtable import conllu_files

    for spec in treebanks.values():
        for path in conllu_files([Path(ud_root, spec["folder"])]):
            blocks = Path(path).read_text(encoding="utf-8").split("\n\n")[:sentences]
            cut = Path(out, spec["folder"], Path(path).name)
            cut.parent.mkdir(parents=True, exist_ok=True)
            cut.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return Path(out)


def checks_config(hub_config: dict[str, Any], ud_root: str | os.PathLike, specs: Iterable[TinyBloom],
                  steps: Iterable[int] = CHECK_STEPS) -> dict[str, Any]:
    """config/hub.yaml's probing part (no transfer, no similarity) on `ud_root`, its models `specs` at
    `steps` (of CHECK_STEPS): the run that the checkpoint checks are tried on."""
    config = {k: v for k, v in hub_config.items() if k not in ("transfer", "similarity")}
    config["ud_root"] = str(ud_root)
    config["models"] = {spec.name: {"source": "hub", "repo": spec.intermediate_repo, "revision": "global_step{step}",
                                    "tokenizer": TOKENIZER_REPO, "steps": list(steps)} for spec in specs}
    return config


# ----------------------------------------------------------------------------- datasets
def write_dataset_repo(mirrors: str | os.PathLike, repo_id: str, configs: dict[str, dict[str, Any]],
                       card: str) -> str:
    """A dataset repo as the hub's parquet conversions lay them out: `<config>/<split>-00000-of-00001.parquet`
    and a README whose YAML header declares each config's data files and features.

    `configs`: config name -> split name -> `datasets.Dataset`.
    """
    files: dict[str, bytes] = {}
    header: dict[str, Any] = {"configs": [], "dataset_info": []}
    with tempfile.TemporaryDirectory() as tmp:
        for config, splits in configs.items():
            for split, data in splits.items():
                path = Path(tmp, config, f"{split}-00000-of-00001.parquet")
                path.parent.mkdir(parents=True, exist_ok=True)
                data.to_parquet(str(path))
                files[f"{config}/{path.name}"] = path.read_bytes()
            header["configs"].append({"config_name": config, "data_files": [
                {"split": split, "path": f"{config}/{split}-*"} for split in splits]})
            features = next(iter(splits.values())).features
            header["dataset_info"].append({
                "config_name": config,
                "features": features._to_yaml_list(),
                "splits": [{"name": split, "num_bytes": data.data.nbytes, "num_examples": len(data)}
                           for split, data in splits.items()],
            })
    files["README.md"] = ("---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n"
                          + f"# {repo_id} (test copy)\n\n{card}\n").encode()
    return commit_files(repo_dir(mirrors, repo_id, "dataset"), "main", files, "data")


def _thirds(rows: list, per_split: int) -> tuple[list, list, list]:
    """Three disjoint slices of at most `per_split` rows each, from the start, middle and end."""
    n = min(per_split, len(rows) // 3)
    middle = len(rows) // 2 - n // 2
    return rows[:n], rows[middle:middle + n], rows[len(rows) - n:]


def xnli_configs(data: Path, per_split: int = 200) -> dict[str, dict[str, Any]]:
    """facebook/xnli: one config per language; premise, hypothesis, label (ClassLabel)."""
    import datasets

    from xlprobe.transfer.data import NLI_LABELS, read_xnli_tsv

    datasets.disable_progress_bars()

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=NLI_LABELS)})
    configs = {}
    for path in sorted((data / "xnli-dev").glob("dev-*.tsv")):
        language = path.stem.removeprefix("dev-")
        splits = dict(zip(("train", "test", "validation"), _thirds(read_xnli_tsv(path), per_split)))
        configs[language] = {
            split: datasets.Dataset.from_dict({
                "premise": [p for p, _, _ in rows], "hypothesis": [h for _, h, _ in rows],
                "label": [NLI_LABELS.index(label) for _, _, label in rows]}, features=features)
            for split, rows in splits.items()
        }
    return configs


def udpos_configs(data: Path, per_split: int = 200) -> dict[str, dict[str, Any]]:
    """google/xtreme `udpos.<Language>`: tokens, pos_tags (a sequence of UPOS ClassLabels).

    English has a train split (from its train file); every language validation and test (from its dev
    file: the shared data has no other labelled split).
    """
    import datasets

    from xlprobe.inputs import UDPOS_HUB_NAMES
    from xlprobe.transfer.data import UPOS, read_xtreme_pos

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "pos_tags": datasets.Sequence(datasets.ClassLabel(names=UPOS))})

    def table(rows):
        return datasets.Dataset.from_dict({"tokens": [w for w, _ in rows],
                                           "pos_tags": [[UPOS.index(t) for t in tags] for _, tags in rows]},
                                          features=features)

    configs = {}
    for path in sorted((data / "udpos").glob("dev-*.tsv")):
        language = path.stem.removeprefix("dev-")
        rows = read_xtreme_pos(path)
        n = min(per_split, len(rows) // 2)
        splits = {"validation": table(rows[:n]), "test": table(rows[len(rows) - n:])}
        if (data / "udpos" / f"train-{language}.tsv").is_file():
            splits = {"train": table(read_xtreme_pos(data / "udpos" / f"train-{language}.tsv")[:per_split]), **splits}
        configs[f"udpos.{UDPOS_HUB_NAMES[language]}"] = splits
    return configs


def opus_configs(data: Path, per_split: int = 200) -> dict[str, dict[str, Any]]:
    """Helsinki-NLP/opus-100: configs named by the sorted pair ("ar-en", "en-fr"); a `translation` dict."""
    import datasets

    configs = {}
    folder = data / "parallel" / "tatoeba"
    for language, code in sorted(_TATOEBA.items()):
        pair = sorted([language, "en"])
        stem = folder / f"tatoeba.{code}-eng"
        if not Path(f"{stem}.{code}").is_file():
            continue
        left = Path(f"{stem}.{code}").read_text(encoding="utf-8").splitlines()
        english = Path(f"{stem}.eng").read_text(encoding="utf-8").splitlines()
        rows = [{language: a, "en": b} for a, b in zip(left, english)]
        features = datasets.Features({"translation": datasets.Translation(languages=pair)})
        configs["-".join(pair)] = {
            split: datasets.Dataset.from_dict({"translation": part}, features=features)
            for split, part in zip(("train", "validation", "test"), _thirds(rows, per_split))
        }
    return configs


def build_dataset_repos(mirrors: str | os.PathLike, data: str | os.PathLike, per_split: int = 200) -> None:
    data = Path(data)
    note = "Built from the project's shared data (../shared/data) for tests; not the real corpus."
    write_dataset_repo(mirrors, XNLI_REPO, xnli_configs(data, per_split), note)
    write_dataset_repo(mirrors, XTREME_REPO, udpos_configs(data, per_split), note)
    write_dataset_repo(mirrors, OPUS_REPO, opus_configs(data, per_split), note)


def tokenizer_text(data: Path, lines_per_file: int = 30) -> list[str]:
    """A few KB of text in the served data's languages and scripts."""
    lines = []
    for path in sorted((data / "xnli-dev").glob("dev-*.tsv")) + sorted((data / "parallel" / "tatoeba").glob("tatoeba.*")):
        with open(path, encoding="utf-8") as handle:
            for _, line in zip(range(lines_per_file), handle):
                lines.append(line.split("\t")[0].strip())
    return lines


def build_all(mirrors: str | os.PathLike, data: str | os.PathLike, models: Iterable[TinyBloom] = DEFAULT_MODELS,
              per_split: int = 200) -> dict[str, Any]:
    """Every repo the hub tests use: tokenizer, models, datasets. Returns the model commits."""
    mirrors, data = Path(mirrors), Path(data)
    text = tokenizer_text(data)
    tokenizer = build_tokenizer(text, mirrors.parent / "tokenizer-build")
    built = {"tokenizer": build_tokenizer_repo(mirrors, tokenizer)}
    for spec in models:
        built[spec.name] = build_model_repos(mirrors, spec, tokenizer, text)
    build_dataset_repos(mirrors, data, per_split)
    return built


# ----------------------------------------------------------------------------- olah
def olah_config(mirrors: str | os.PathLike, cache: str | os.PathLike, port: int) -> str:
    """olah.toml serving `mirrors` on 127.0.0.1:`port`, never contacting the real hub."""
    return (
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{Path(cache).resolve()}"\n'
        f'mirrors-path = ["{Path(mirrors).resolve()}"]\n'
        f'mirror-netloc = "127.0.0.1:{port}"\n'
        f'mirror-lfs-netloc = "127.0.0.1:{port}"\n\n'
        "[accessibility]\n"
        "offline = true\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python tests/localhub.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "config", "add-step"])
    parser.add_argument("mirrors", help="folder for the git repos (models/, datasets/)")
    parser.add_argument("--data", default="../shared/data", help="the shared data (build)")
    parser.add_argument("--per-split", type=int, default=200, help="rows per dataset split (build)")
    parser.add_argument("--cache", help="olah's cache folder (config)")
    parser.add_argument("--port", type=int, default=8790, help="port (config)")
    parser.add_argument("--model", help="add-step: a model family's name, e.g. bloom-32")
    parser.add_argument("--step", type=int, help="add-step: the step of the new global_step{N} branch")
    args = parser.parse_args(argv)
    if args.command == "build":
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        print(yaml.safe_dump(build_all(args.mirrors, args.data, per_split=args.per_split)))
    elif args.command == "add-step":
        spec = {m.name: m for m in DEFAULT_MODELS}[args.model]
        print(add_step(args.mirrors, spec, served_tokenizer(args.mirrors), args.step))
    else:
        print(olah_config(args.mirrors, args.cache or Path(args.mirrors).parent / "olah-cache", args.port), end="")


if __name__ == "__main__":
    main()

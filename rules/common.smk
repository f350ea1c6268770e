# Config-derived lists, output paths and input functions shared by all rule files.
# Per-step rules take only their own slice of the config, so that adding a step, a language or a
# layer schedules only the new jobs plus the cheap aggregates.
import functools
import os
from pathlib import Path

from snakemake.exceptions import IncompleteCheckpointException, WorkflowError
from snakemake.logging import logger

from xlprobe import costs
from xlprobe.hubdata import PREFETCH_MARKER, marker_name, repo_of
from xlprobe.identity import point, run_spec
from xlprobe.inputs import hub_pairs, similarity_data_files, task_data_files, task_hub_datasets
from xlprobe.provenance import sidecar_path
from xlprobe.ud_release import UD_2_1_URL as UD_RELEASE_URL
from xlprobe.resolved_config import resolve_config

# The config resolved once (xlprobe.resolved_config): the schema's defaults filled in (config/schema.yaml
# is the one place they are written), every error naming its key, devices resolved, steps listed.
# Steps given as a selector are listed from the hub here, in the submit host's Snakemake (before
# offline mode is set below), and recorded; SLURM jobs' own Snakemake processes read the record.
SCHEMA = workflow.source_path("../config/schema.yaml")
RESOLVED = resolve_config(config, schema_path=SCHEMA, workdir=os.getcwd(), refresh_steps=workflow.is_main_process)
STEPS = RESOLVED.steps
# Run name -> {model, seed}: one run per pre-training seed of a model with `seeds` (xlprobe.identity).
# The `model` wildcard of every path is a run's name.
RUNS = RESOLVED.runs
# Model -> {step: branch} of each discovered step, as listed.
BRANCHES = RESOLVED.branches

# Compute nodes have no internet: every hub object (checkpoints, tokenizers, datasets) is fetched once
# by the local rules download_checkpoint and prefetch_dataset on the submit host, and every job runs in
# offline mode, so that one reaching for the network fails at once, naming what is missing and the rule
# that fetches it. The two fetching rules switch it off for themselves (xlprobe.hubdata.go_online).
# Set here, in every Snakemake process: the submit host's and each SLURM job's own.
for _variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_variable] = "1"

RESULTS = config["results"]
LOGS = f"{RESULTS}/logs"

# Snakemake judges files by time stamps: a truncated dump or a probe deleted under an up-to-date
# overlap looks finished to it. Their sizes and presence are checked at each start and named, with
# the command that rebuilds each (`xlprobe verify` also compares checksums).
if workflow.is_main_process and os.path.isdir(RESULTS):
    from xlprobe.integrity import verify_results

    _configfiles = " ".join(map(str, workflow.overwrite_configfiles or []))
    for _damaged in verify_results(RESULTS, _configfiles or None, quick=True)[1]:
        logger.warning(f"{_damaged}; `xlprobe verify {RESULTS}` checks every recorded file")
BENCH = f"{RESULTS}/benchmarks"
DEMO_DIR = RESOLVED.demo_dir
SCRIPTS = "workflow/scripts"


wildcard_constraints:
    model="[A-Za-z0-9_.-]+",
    step="[A-Za-z0-9_]+",
    layer=r"\d+",
    treebank="[A-Za-z0-9_]+",
    task="[A-Za-z0-9_]+",
    dataset="[A-Za-z0-9_.-]+--[A-Za-z0-9_.-]+",
    config="[A-Za-z0-9_.-]+",
    folder="UD_[^/]+",


MODELS = list(config["models"])
TREEBANKS = list(config["treebanks"])
LAYERS = [int(layer) for layer in config["activations"]["layers"]]
TASKS = list(config.get("transfer", {}).get("tasks", {}))
DEMO_MODELS = RESOLVED.demo_models


def sized(full, demo):
    """A job's threads or memory: the real models' need, or the demo's.

    The demo's tiny models run fastest on one thread and need well under a GB; asking for a real
    model's share would make a small cluster run the demo one job at a time.
    """
    return demo if RESOLVED.is_demo else full


def steps_of(run):
    return STEPS[RUNS[run]["model"]]


def model_points():
    """Every (run, step) pair of the grid: a run is a model, or one pre-training seed of it."""
    return RESOLVED.points()


def result_point(wildcards):
    """The identity (model, seed, step, layer, treebank) a job writes into its result (xlprobe.identity)."""
    return point(**RUNS[wildcards.model], step=wildcards.step, layer=wildcards.get("layer"),
                 treebank=wildcards.get("treebank"))


# ----------------------------------------------------------------------------- requests
# Derived from each job's input size and the measured unit costs (xlprobe.costs; docs/cluster.md).
PROBE_DEVICE = RESOLVED.probe_device  # cpu unless the config names a GPU (xlprobe.devices)


def table_rows(path):
    """Rows of a word table (its lines minus the header), or None before it exists."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        return sum(1 for _ in handle) - 1


def treebank_rows(treebank):
    """A treebank's word-table rows: counted once the table exists, else its documented size (the
    largest documented one for a folder not in xlprobe/data/treebank_sizes.tsv)."""
    rows = table_rows(words_path(treebank))
    return rows if rows is not None else costs.tokens_of(config["treebanks"][treebank]["folder"], strict=False)


def model_shape(run):
    """The run's model's shape from its config.json, or None before one can be read (fixed requests)."""
    return RESOLVED.model_shape(run)


def probe_request(wildcards, input):
    shape = model_shape(wildcards.model)
    return costs.probe_request(
        config["probe"],
        attributes_path=input.attributes,
        activations_path=input.activations,
        tokens=treebank_rows(wildcards.treebank),
        dim=costs.dumped_width(shape, config["activations"]) if shape else None,
    )


def dump_request(wildcards, input):
    shape = model_shape(wildcards.model)
    if not shape:
        return costs.unsized("dump")
    # The forward pass costs the same at either site; the mlp site's output is the MLP's width.
    width = costs.dumped_width(shape, config["activations"])
    return costs.dump_request(treebank_rows(wildcards.treebank), shape.hidden, shape.parameters, LAYERS, width=width)


def transfer_request(wildcards):
    shape = model_shape(wildcards.model)
    if not shape:
        return costs.unsized("transfer")
    settings = {k: v for k, v in config["transfer"].items() if k != "tasks"}
    return costs.transfer_request(config["transfer"]["tasks"][wildcards.task], settings, shape.parameters)


# ----------------------------------------------------------------------------- paths
def words_path(treebank):
    return f"{RESULTS}/words/{treebank}.tsv"


def attributes_path(treebank):
    return f"{RESULTS}/words/{treebank}.attributes.tsv"


ACTIVATIONS = f"{RESULTS}/activations/{{model}}/{{step}}/{{treebank}}"
PROBE = f"{RESULTS}/probes/{{model}}/{{step}}/layer{{layer}}/{{treebank}}.json"
OVERLAP = f"{RESULTS}/overlap/{{model}}/{{step}}/layer{{layer}}.tsv"
STABILITY = f"{RESULTS}/stability/{{model}}/{{step}}/layer{{layer}}.tsv"
TRANSFER = f"{RESULTS}/transfer/{{model}}/{{step}}/{{task}}.tsv"
SIMILARITY = f"{RESULTS}/similarity/{{model}}/{{step}}.tsv"
LM_LOSS = f"{RESULTS}/lm_loss/{{model}}/{{step}}.json"
PROBE_TRANSFER = f"{RESULTS}/probe_transfer/{{model}}/{{step}}/layer{{layer}}.tsv"
CHECKPOINT_MARKER = "resources/checkpoints/{model}/{step}.json"

FIGURES = RESOLVED.figures


def demo_treebank_files(language=None):
    """The CoNLL-U files the demo generator writes: every demo language's, or one language's."""
    from xlprobe.demo.synthetic import demo_treebank_file  # demo configs only

    languages = [language] if language else config["demo"]["languages"]
    return [
        str(demo_treebank_file(config["ud_root"], code, split))
        for code in languages
        for split in ("train", "dev", "test")
    ]


def checkpoint_input(wildcards):
    """What a job on one (model, step) needs before it can load the checkpoint."""
    if config["models"][RUNS[wildcards.model]["model"]]["source"] == "demo":
        return f"{DEMO_DIR}/models/{wildcards.model}"
    return CHECKPOINT_MARKER.format(model=wildcards.model, step=wildcards.step)


def canonical(value):
    """A config value with its dictionaries' keys sorted.

    Snakemake compares params by their text, so reordering keys in a config must not rerun a job.
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def model_slice(wildcards):
    """One run's model config at one step, without its step list: adding a step reruns nothing here."""
    spec = {k: v for k, v in run_spec(config["models"], RUNS[wildcards.model]).items() if k != "steps"}
    # Only where the template cannot spell it: a global_step{step} slice is its config and nothing more.
    branch = BRANCHES[RUNS[wildcards.model]["model"]].get(wildcards.step)
    if branch == spec.get("revision", "").replace("{step}", wildcards.step):
        branch = None
    return canonical({"name": wildcards.model, "step": wildcards.step, **spec, **({"branch": branch} if branch else {})})


def dump_settings():
    """The activation settings that decide a dump's numbers.

    Not its layers (each is an output file of its own) and not its batch size (the same numbers either
    way): adding a layer, or lowering the batch size after running out of memory, must not make the
    finished dumps' probes look out of date.
    """
    return canonical({k: v for k, v in config["activations"].items() if k not in ("layers", "batch_size")})


# ----------------------------------------------------------------------------- targets
@functools.cache
def probed(treebank):
    """Whether a treebank has an attribute to probe (>= 2 values, each min_count times in every split).

    Known once its word table exists: build_word_table is a checkpoint, and until it has run Snakemake
    holds back the jobs that depend on the answer. A treebank with nothing to probe gets no dump and no
    probe; its attribute table says why. A dry run before the word tables exist lists every treebank's
    jobs (an upper bound) rather than hiding them.
    """
    from xlprobe.wordtable import probed_attributes

    try:
        attributes = checkpoints.build_word_table.get(treebank=treebank).output.attributes
    except IncompleteCheckpointException:
        if not workflow.dryrun:
            raise  # Snakemake runs the checkpoint, then asks again
        attributes = attributes_path(treebank)
        if not os.path.exists(attributes):
            dry_run_note()
            return True
    if probed_attributes(attributes):
        return True
    logger.warning(f"treebank {treebank}: no attribute to probe (see {attributes}); not dumped or probed")
    return False


@functools.cache
def dry_run_note():
    logger.info(
        "Word tables not built yet: the dry run lists every treebank's dumps and probes; "
        "the real run drops a treebank left with no attribute to probe."
    )


def probe_files(model, step, layer):
    files = [PROBE.format(model=model, step=step, layer=layer, treebank=tb) for tb in TREEBANKS if probed(tb)]
    if not files:
        # Said here, before any dump: compute_overlap would otherwise fail on an empty input list.
        tables = ", ".join(attributes_path(tb) for tb in TREEBANKS)
        raise WorkflowError(
            "no treebank has an attribute to probe: every value needs words.min_count "
            f"({config['words']['min_count']}) tokens in each split; the attribute tables say what each "
            f"treebank has ({tables})"
        )
    return files


def all_overlap_files():
    return [OVERLAP.format(model=m, step=s, layer=l) for m, s in model_points() for l in LAYERS]


def all_stability_files():
    return [STABILITY.format(model=m, step=s, layer=l) for m, s in model_points() for l in LAYERS]


def all_probe_transfer_files():
    return [PROBE_TRANSFER.format(model=m, step=s, layer=l) for m, s in model_points() for l in LAYERS]


def probe_transfer_input(wildcards):
    """Per probed treebank of the grid: its word and attribute tables and its dump at the job's layer."""
    inputs = {}
    for tb in TREEBANKS:
        if probed(tb):
            folder = ACTIVATIONS.format(model=wildcards.model, step=wildcards.step, treebank=tb)
            inputs[f"{tb}__words"] = words_path(tb)
            inputs[f"{tb}__attributes"] = attributes_path(tb)
            inputs[f"{tb}__activations"] = ancient(f"{folder}/layer{wildcards.layer}.npy")
            inputs[f"{tb}__meta"] = ancient(f"{folder}/meta.json")
    return inputs


def probe_transfer_request(wildcards, input):
    """From the attribute tables and the dumps' width where they exist, else the documented sizes."""
    shape = model_shape(wildcards.model)
    treebanks = [tb for tb in TREEBANKS if f"{tb}__attributes" in input.keys()]
    sizes = [
        costs.attribute_sizes(attributes_path(tb)) if os.path.exists(attributes_path(tb))
        else costs.estimated_attribute_sizes(treebank_rows(tb))
        for tb in treebanks
    ]
    activations = [input[f"{tb}__activations"] for tb in treebanks if os.path.exists(input[f"{tb}__activations"])]
    if activations:
        dim = costs.npy_shape(activations[0])[1]
    elif shape:
        dim = costs.dumped_width(shape, config["activations"])
    else:
        return costs.unsized("probe")
    words = sum(treebank_rows(tb) for tb in treebanks)
    return costs.probe_transfer_request(sizes, words, dim, config["probe_transfer"])


def all_transfer_files():
    return [TRANSFER.format(model=m, step=s, task=t) for m, s in model_points() for t in TASKS]


def all_similarity_files():
    if not config.get("similarity"):
        return []
    return [SIMILARITY.format(model=m, step=s) for m, s in model_points()]


def all_lm_loss_files():
    return [LM_LOSS.format(model=m, step=s) for m, s in model_points()]


def lm_loss_text():
    """The similarity settings that name the LM-loss sample's text (xlprobe.lm_loss.text_settings)."""
    from xlprobe.lm_loss import text_settings

    return text_settings(config.get("similarity"))


def all_outputs():
    outputs = [
        f"{RESULTS}/alignment.tsv",
        f"{RESULTS}/correlations.tsv",
        *[f"{RESULTS}/figures/{name}.png" for name in FIGURES],
        *[attributes_path(tb) for tb in TREEBANKS],
    ]
    return outputs


def treebank_input(treebank):
    """The CoNLL-U files of one treebank, every split pooled (the paper pools train/dev/test).

    A treebank missing from ud_root comes from the release archive (rule extract_treebank).
    """
    folder = config["treebanks"][treebank]["folder"]
    if RESOLVED.is_demo:
        return demo_treebank_files(config["treebanks"][treebank]["language"])
    files = sorted(str(p) for p in Path(config["ud_root"], folder).glob("*.conllu"))
    return files or [f"{config['ud_root']}/{folder}"]


def transfer_data_input(task):
    """Local data files of a transfer task (none for tasks read from the hub)."""
    return task_data_files(config["transfer"]["tasks"][task], words_path, name=task)


# (repo, config name) -> splits of every hub dataset the config reads (rule prefetch_dataset).
HUB_DATASETS = RESOLVED.hub_datasets


def dataset_marker(repo, name):
    return PREFETCH_MARKER.format(dataset=marker_name(repo), config=name)


def hub_dataset_markers(keys):
    return [dataset_marker(repo, name) for repo, name in keys]


def transfer_hub_input(task):
    """The prefetch markers of a task's hub datasets (none for local formats)."""
    return hub_dataset_markers(task_hub_datasets(config["transfer"]["tasks"][task]))


def similarity_hub_input(wildcards):
    return hub_dataset_markers(hub_pairs(config.get("similarity") or {}))


def similarity_data_input(wildcards):
    """The parallel text files the similarity (and the LM-loss sample) read: none without `similarity`."""
    return similarity_data_files(config["similarity"], DEMO_DIR) if config.get("similarity") else []


def lm_loss_treebanks(wildcards):
    """language -> the files of its treebanks, treebanks in config order (xlprobe.lm_loss.write_sample)."""
    languages = {}
    for treebank in TREEBANKS:
        languages.setdefault(config["treebanks"][treebank]["language"], []).extend(treebank_input(treebank))
    return languages

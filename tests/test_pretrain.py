import random

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from xlprobe.demo.pretrain import init_model, pretrain, train_tokenizer

TINY = {"hidden_size": 32, "n_layer": 2, "n_head": 2, "batch_size": 8, "seq_len": 16, "lr": 1e-2, "seed": 3}


def write_toy_text(path, seed=0, sentences=400):
    """Two toy 'languages' with number agreement marked by suffixes."""
    rng = random.Random(seed)
    stems = ["kat", "dor", "milo", "supa", "renu", "tavi", "lor", "biko"]
    verbs = ["runa", "esta", "vide", "maki"]
    lines = []
    for _ in range(sentences):
        plural = rng.random() < 0.5
        noun = rng.choice(stems) + ("es" if plural else "a")
        verb = rng.choice(verbs) + ("nt" if plural else "t")
        lines.append(f"{noun} {verb} {rng.choice(stems)}a .")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    text = write_toy_text(root / "toy.txt")
    train_tokenizer([text], root / "tokenizer", vocab_size=300)
    log = pretrain(root / "tokenizer", [text], root / "models" / "toy", train_steps=30, save_steps=[0, 10, 30], **TINY)
    return root, log


def test_tokenizer_is_byte_level_without_prefix_space(tmp_path):
    text = write_toy_text(tmp_path / "toy.txt")
    tokenizer = train_tokenizer([text], tmp_path / "tok", vocab_size=300)
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert len(reloaded) == len(tokenizer) <= 300
    # Characters never seen in training are spelled in bytes, never <unk>.
    ids = reloaded("жξ€", add_special_tokens=False)["input_ids"]
    assert reloaded.unk_token_id not in ids
    assert reloaded.decode(ids) == "жξ€"
    # A word alone has no leading space; inside a sentence it has one (BLOOM's behaviour).
    alone = reloaded.tokenize("kata")
    inside = reloaded.tokenize("dora kata")
    assert not alone[0].startswith("Ġ")
    assert any(piece.startswith("Ġ") for piece in inside[1:])


def test_checkpoints_saved_at_configured_steps(trained):
    root, _log = trained
    model_dir = root / "models" / "toy"
    assert sorted(p.name for p in model_dir.iterdir() if p.is_dir()) == ["0", "10", "30"]
    assert (model_dir / "training_log.tsv").is_file()
    for step in ("0", "10", "30"):
        model = AutoModelForCausalLM.from_pretrained(model_dir / step)
        tokenizer = AutoTokenizer.from_pretrained(model_dir / step)
        assert model.config.model_type == "bloom"
        assert model.config.hidden_size == 32 and model.config.n_layer == 2
        assert model.config.vocab_size == len(tokenizer)
    # No temporary build directory is left behind.
    assert [p.name for p in (root / "models").iterdir()] == ["toy"]


def test_step0_is_the_seeded_initialisation_and_training_changes_it(trained):
    root, _ = trained
    tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer")
    fresh = init_model(tokenizer, hidden_size=32, n_layer=2, n_head=2, seed=TINY["seed"])
    step0 = AutoModelForCausalLM.from_pretrained(root / "models" / "toy" / "0")
    step30 = AutoModelForCausalLM.from_pretrained(root / "models" / "toy" / "30")
    fresh_state, state0, state30 = fresh.state_dict(), step0.state_dict(), step30.state_dict()
    for name, tensor in fresh_state.items():
        assert torch.equal(tensor, state0[name]), name
    changed = [name for name in state0 if not torch.equal(state0[name], state30[name])]
    assert len(changed) == len(state0)


def test_training_log_and_loss_falls(trained):
    root, log = trained
    on_disk = pd.read_csv(root / "models" / "toy" / "training_log.tsv", sep="\t")
    pd.testing.assert_frame_equal(on_disk, log, check_dtype=False)
    saved = log.dropna(subset=["held_out_loss"]).set_index("step")["held_out_loss"]
    assert list(saved.index) == [0, 10, 30]
    # Step 0 is close to uniform over the vocabulary; training must do clearly better.
    assert saved[0] == pytest.approx(np.log(300), abs=0.5)
    assert saved[30] < saved[0] - 1.5


def test_same_seed_same_weights(trained, tmp_path):
    root, _ = trained
    states = []
    for name in ("once", "twice"):
        pretrain(root / "tokenizer", [root / "toy.txt"], tmp_path / name, train_steps=5, save_steps=[5], **TINY)
        states.append(AutoModelForCausalLM.from_pretrained(tmp_path / name / "5").state_dict())
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name


def test_bad_settings_fail_clearly(trained, tmp_path):
    root, _ = trained
    with pytest.raises(ValueError, match="save_steps .* beyond .*train_steps"):
        pretrain(root / "tokenizer", [root / "toy.txt"], tmp_path / "x", train_steps=5, save_steps=[0, 10], **TINY)
    with pytest.raises(ValueError, match="not divisible by pretrain.n_head"):
        pretrain(root / "tokenizer", [root / "toy.txt"], tmp_path / "x", train_steps=5, save_steps=[5],
                 **{**TINY, "n_head": 3})
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="no text in .*empty.txt"):
        pretrain(root / "tokenizer", [empty], tmp_path / "x", train_steps=5, save_steps=[5], **TINY)
    assert not (tmp_path / "x").exists()


def test_learns_the_next_token_not_the_one_after(tmp_path):
    """On a deterministic cycle of words a trained model must predict the next token.

    Guards the one label convention: transformers' causal-LM loss shifts `labels` itself, so targets
    that are already shifted would teach the token after next.
    """
    cycle = ["ka", "lo", "mi", "nu", "pe", "ro", "su", "ti"]
    rng = random.Random(1)
    lines = []
    for _ in range(300):
        start = rng.randrange(len(cycle))
        lines.append(" ".join(cycle[(start + i) % len(cycle)] for i in range(24)))
    text = tmp_path / "cycle.txt"
    text.write_text("\n".join(lines) + "\n")
    train_tokenizer([text], tmp_path / "tok", vocab_size=300)
    pretrain(tmp_path / "tok", [text], tmp_path / "model", train_steps=60, save_steps=[60], **TINY)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model" / "60").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model" / "60")
    ids = torch.tensor([tokenizer(" ".join(cycle * 4), add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        predicted = model(input_ids=ids).logits.argmax(-1)[0]
    # Positions 1.. are inside the sentence, where every continuation is determined.
    next_token = (predicted[1:-2] == ids[0, 2:-1]).float().mean().item()
    token_after_next = (predicted[1:-2] == ids[0, 3:]).float().mean().item()
    assert next_token > 0.9, (next_token, token_after_next)
    assert token_after_next < 0.1

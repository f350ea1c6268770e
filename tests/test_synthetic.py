"""The demo's synthetic languages: files, trees, features, agreement, anchors and split sizes."""

import collections
import filecmp
import itertools
import json
import unicodedata
from pathlib import Path

import conllu
import numpy as np
import pandas as pd
import pytest

from xlprobe.demo.synthetic import (
    LANGUAGES,
    N_NAMES,
    N_NUMERALS,
    build_lexicons,
    demo_data_paths,
    generate_demo_data,
    parallel_corpus,
    shared_anchor_keys,
)

CODES = ["xa", "xb", "xc", "xd"]
FOLDERS = {code: f"UD_Synth-{code.capitalize()}" for code in CODES}


def generate(root: Path, seed=0, treebank=40, pretrain=30, parallel=20, shared=0.5) -> dict:
    return generate_demo_data(
        ud_root=root / "ud",
        demo_dir=root / "demo",
        languages=CODES,
        treebank_sentences=treebank,
        pretrain_sentences=pretrain,
        parallel_sentences=parallel,
        shared_vocabulary=shared,
        seed=seed,
    )


def read_treebank(root: Path, code: str) -> list[conllu.TokenList]:
    folder = root / "ud" / FOLDERS[code]
    return [
        s
        for split in ("train", "dev", "test")
        for s in conllu.parse((folder / f"{code}-ud-{split}.conllu").read_text())
    ]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Treebanks and parallel text at the demo's sizes; little pre-training text (tested elsewhere)."""
    root = tmp_path_factory.mktemp("demo")
    generate(root, treebank=1500, pretrain=50, parallel=300)
    return root


@pytest.fixture(scope="module")
def treebanks(demo) -> dict[str, list[conllu.TokenList]]:
    return {code: read_treebank(demo, code) for code in CODES}


def test_writes_every_contract_file_and_summary(demo):
    paths = demo_data_paths(demo / "ud", demo / "demo", CODES)
    assert all(path.is_file() for path in paths)
    assert len(paths) == 4 * 3 + 4 + 4 + 1
    summary = json.loads((demo / "demo" / "demo_data.json").read_text())
    assert summary["treebanks"]["xb"]["sentences"] == {"train": 1200, "dev": 150, "test": 150}
    assert summary["languages"]["xc"]["order"] == "VSO"
    assert summary["settings"]["shared_vocabulary"] == 0.5
    assert summary["provenance"]["stage"] == "generate_demo_data"
    assert len((demo / "demo" / "text" / "xd.txt").read_text().splitlines()) == 50


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    generate(tmp_path / "a", seed=3)
    generate(tmp_path / "b", seed=3)
    generate(tmp_path / "c", seed=4)
    names = [
        p.relative_to(tmp_path / "a")
        for p in demo_data_paths(tmp_path / "a" / "ud", tmp_path / "a" / "demo", CODES)
    ]
    data_files = [n for n in names if n.suffix != ".json"]  # the summary holds a time stamp
    for name in data_files:
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name
        assert (tmp_path / "a" / name).read_text() != (tmp_path / "c" / name).read_text(), name


def test_conllu_is_valid_with_one_rooted_tree_per_sentence(demo, treebanks):
    for code, sentences in treebanks.items():
        assert len(sentences) == 1500
        for sentence in sentences:
            assert sentence.metadata["sent_id"].startswith(f"{code}-")
            assert sentence.metadata["text"] == " ".join(t["form"] for t in sentence)
            assert 4 <= len(sentence) <= 20
            heads = {t["id"]: t["head"] for t in sentence}
            roots = [t for t in sentence if t["head"] == 0]
            assert len(roots) == 1 and roots[0]["deprel"] == "root" and roots[0]["upos"] == "VERB"
            for start in heads:  # walking up from any word reaches the root without a cycle
                node, steps = start, 0
                while node != 0:
                    assert node in heads, (code, sentence.metadata["sent_id"])
                    node, steps = heads[node], steps + 1
                    assert steps <= len(sentence)
            assert sentence.to_tree().token["id"] == roots[0]["id"]
        ids = [s.metadata["sent_id"] for s in sentences]
        assert len(set(ids)) == len(ids)
    # FEATS are written sorted by name, as UD requires.
    for line in (demo / "ud" / "UD_Synth-Xc" / "xc-ud-dev.conllu").read_text().splitlines():
        if line and not line.startswith("#") and line.split("\t")[5] != "_":
            names = [item.split("=")[0] for item in line.split("\t")[5].split("|")]
            assert names == sorted(names, key=str.lower)


def feature_values(sentences) -> dict[str, set[str]]:
    values = collections.defaultdict(set)
    for token in itertools.chain.from_iterable(sentences):
        for name, value in (token["feats"] or {}).items():
            values[name].add(value)
    return values


def test_features_are_those_each_language_was_designed_with(treebanks):
    expected_case = {
        "xa": None,
        "xb": {"Nom", "Acc", "Dat"},
        "xc": {"Erg", "Abs", "Dat"},
        "xd": {"Nom", "Acc", "Dat"},
    }
    for code, sentences in treebanks.items():
        values = feature_values(sentences)
        assert values["Number"] == {"Sing", "Plur"}
        assert values["Person"] == {"1", "2", "3"}
        assert values["Tense"] == ({"Pres", "Past"} if code == "xb" else {"Pres", "Past", "Fut"})
        assert ("Gender" in values) == (code in ("xa", "xc"))
        assert values.get("Case") == expected_case[code]
        upos = {t["upos"] for t in itertools.chain.from_iterable(sentences)}
        assert {"NOUN", "VERB", "ADJ", "PRON", "DET", "ADP", "NUM", "PROPN", "PUNCT"} <= upos
        for token in itertools.chain.from_iterable(sentences):
            if token["upos"] == "VERB":
                assert set(token["feats"]) == {"Number", "Person", "Tense"}


def test_scripts_and_affix_positions(treebanks):
    lexicons = build_lexicons(0.5, 0)
    letters = {"xb": "CYRILLIC", "xc": "GREEK", "xa": "LATIN", "xd": "LATIN"}
    for code, sentences in treebanks.items():
        nouns = [t for t in itertools.chain.from_iterable(sentences) if t["upos"] == "NOUN"]
        assert all(letters[code] in unicodedata.name(c) for t in nouns for c in t["form"])
        stems = lexicons[code].nouns
        suffixing = LANGUAGES[code].affixation == "suffix"
        # Every noun form keeps some stem at its start (suffixing) or its end (prefixing).
        for t in nouns[:300]:
            assert any(t["form"].startswith(s) if suffixing else t["form"].endswith(s) for s in stems), t[
                "form"
            ]


def test_agreement_within_noun_phrases_and_with_the_subject(treebanks):
    checked = collections.Counter()
    for code, sentences in treebanks.items():
        for sentence in sentences:
            by_id = {t["id"]: t for t in sentence}
            for token in sentence:
                feats = token["feats"] or {}
                head = by_id.get(token["head"])
                if token["upos"] in ("ADJ", "DET") and token["deprel"] in ("amod", "det"):
                    for name in ("Gender", "Number", "Case"):
                        if name in feats:
                            assert feats[name] == head["feats"][name], (code, sentence.metadata["text"])
                    checked[code, "np"] += 1
                if token["deprel"] == "nsubj":
                    person = feats.get("Person", "3")
                    assert (person, feats["Number"]) == (head["feats"]["Person"], head["feats"]["Number"])
                    has_object = any(t["head"] == head["id"] and t["deprel"] == "obj" for t in sentence)
                    if code == "xc":
                        assert feats["Case"] == ("Erg" if has_object else "Abs")
                    if code in ("xb", "xd"):
                        assert feats["Case"] == "Nom"
                    checked[code, "subject"] += 1
    assert min(checked.values()) > 500


def test_word_orders(treebanks):
    first_before = collections.defaultdict(collections.Counter)
    for code, sentences in treebanks.items():
        for sentence in sentences:
            root = next(t for t in sentence if t["head"] == 0)["id"]
            subj = [t["id"] for t in sentence if t["deprel"] == "nsubj" and t["head"] == root]
            obj = [t["id"] for t in sentence if t["deprel"] == "obj" and t["head"] == root]
            if subj and obj:
                order = "".join(k for _, k in sorted([(subj[0], "S"), (obj[0], "O"), (root, "V")]))
                first_before[code][order] += 1
            for t in sentence:
                if t["deprel"] == "amod":
                    first_before[code]["adj-first" if t["id"] < t["head"] else "noun-first"] += 1
    assert set(first_before["xa"]) == {"SVO", "noun-first"}
    assert set(first_before["xb"]) == {"SOV", "adj-first"}
    assert set(first_before["xc"]) == {"VSO", "noun-first"}
    assert set(first_before["xd"]) == {"SVO", "adj-first"}


def test_parallel_lines_render_the_same_abstract_sentences(demo):
    lines = {code: (demo / "demo" / "parallel" / f"{code}.txt").read_text().splitlines() for code in CODES}
    assert {len(v) for v in lines.values()} == {300}
    lexicons = build_lexicons(0.5, 0)
    corpus = parallel_corpus(lexicons, CODES, 300, seed=0)
    for i, (sentence, _) in enumerate(corpus):
        nouns = set()
        for clause in sentence.clauses:
            for nominal in (clause.subject, clause.object, clause.indirect):
                if nominal is not None and nominal.kind == "noun":
                    nouns.add(nominal.concept)
        for code in CODES:
            words = lines[code][i].split()
            for noun in nouns:
                assert any(lexicons[code].nouns[noun] in word for word in words), (code, i)
    assert len({lines[code][0] for code in CODES}) == 4


def anchor_forms(lexicon) -> list[str]:
    return [*lexicon.numerals, *lexicon.names, *lexicon.punctuation.values()]


def test_shared_vocabulary_controls_how_anchors_are_spelled():
    everything = build_lexicons(1.0, seed=0)
    nothing = build_lexicons(0.0, seed=0)
    assert len({tuple(anchor_forms(lex)) for lex in everything.values()}) == 1
    assert everything["xc"].numerals == [str(i) for i in range(1, N_NUMERALS + 1)]
    for a, b in itertools.combinations(CODES, 2):
        assert set(anchor_forms(nothing[a])).isdisjoint(anchor_forms(nothing[b])), (a, b)
    half = build_lexicons(0.5, seed=0)
    n_anchors = N_NUMERALS + N_NAMES + 3
    same = sum(len({anchor_forms(lex)[i] for lex in half.values()}) == 1 for i in range(n_anchors))
    assert same == round(0.5 * n_anchors)
    assert set(shared_anchor_keys(0.3, 0)) <= set(shared_anchor_keys(0.6, 0))
    # Sharing changes the anchors only, never the rest of the vocabulary.
    assert nothing["xa"].nouns == everything["xa"].nouns and nothing["xb"].verbs == everything["xb"].verbs


def test_shared_anchors_reach_the_treebanks(tmp_path):
    for shared in (0.0, 1.0):
        generate(tmp_path / str(shared), treebank=200, shared=shared)
    forms = {
        (shared, code): {
            t["form"]
            for s in read_treebank(tmp_path / str(shared), code)
            for t in s
            if t["upos"] in ("NUM", "PROPN")
        }
        for shared in (0.0, 1.0)
        for code in CODES
    }
    for a, b in itertools.combinations(CODES, 2):
        assert forms[0.0, a].isdisjoint(forms[0.0, b])
        overlap = forms[1.0, a] & forms[1.0, b]
        assert len(overlap) >= 0.5 * min(len(forms[1.0, a]), len(forms[1.0, b]))


def test_lemma_disjoint_split_keeps_twenty_tokens_of_every_value(treebanks):
    """The paper's split: unique lemmas 80/10/10 (seeded), every token follows its lemma."""
    for code, sentences in treebanks.items():
        rows = [{"lemma": t["lemma"], **(t["feats"] or {})} for s in sentences for t in s]
        words = pd.DataFrame(rows)
        lemmas = np.random.default_rng(0).permutation(sorted(words["lemma"].unique()))
        n_train, n_dev = int(0.8 * len(lemmas)), int(0.1 * len(lemmas))
        split_of = {lemma: "train" for lemma in lemmas[:n_train]}
        split_of.update({lemma: "dev" for lemma in lemmas[n_train : n_train + n_dev]})
        split_of.update({lemma: "test" for lemma in lemmas[n_train + n_dev :]})
        words["split"] = words["lemma"].map(split_of)
        for attribute in ("Number", "Tense", "Person", "Case", "Gender"):
            if attribute not in words:
                continue
            counts = words.groupby([attribute, "split"]).size().unstack(fill_value=0)
            assert set(counts.columns) == {"train", "dev", "test"}
            assert (counts >= 20).all().all(), f"{code} {attribute}:\n{counts}"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"languages": ["xa", "zz"]}, "demo.languages"),
        ({"shared_vocabulary": 1.5}, "demo.shared_vocabulary"),
        ({"treebank_sentences": 5}, "demo.treebank_sentences"),
    ],
)
def test_bad_settings_name_the_config_key(tmp_path, change, message):
    settings = {
        "ud_root": tmp_path / "ud",
        "demo_dir": tmp_path / "demo",
        "languages": CODES,
        "treebank_sentences": 20,
        "pretrain_sentences": 5,
        "parallel_sentences": 5,
    }
    settings.update(change)
    with pytest.raises(ValueError, match=message):
        generate_demo_data(**settings)
    assert not (tmp_path / "demo" / "demo_data.json").exists()


def test_generate_from_config_reads_the_demo_section(tmp_path):
    from xlprobe.demo.synthetic import generate_from_config

    demo = {"dir": str(tmp_path / "b" / "demo"), "languages": CODES, "treebank_sentences": 40,
            "pretrain_sentences": 30, "parallel_sentences": 20, "shared_vocabulary": 0.5,
            "tokenizer_vocab_size": 600}  # a key of the tokenizer rule, not of the generator
    generate_from_config(demo, ud_root=tmp_path / "b" / "ud", seed=3)
    generate(tmp_path / "a", seed=3)
    for path in demo_data_paths(tmp_path / "a" / "ud", tmp_path / "a" / "demo", CODES):
        if path.suffix != ".json":
            twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert filecmp.cmp(path, twin, shallow=False), path


def test_code_switching_adds_mixed_sentences_and_leaves_the_rest_alone(tmp_path):
    plain = generate(tmp_path / "plain", pretrain=60)
    mixed = generate_demo_data(
        ud_root=tmp_path / "mixed" / "ud", demo_dir=tmp_path / "mixed" / "demo", languages=CODES,
        treebank_sentences=40, pretrain_sentences=60, parallel_sentences=20, shared_vocabulary=0.5,
        code_switching=0.5, code_switching_languages=["xa", "xb"], seed=0,
    )
    text = {name: {code: (tmp_path / name / "demo" / "text" / f"{code}.txt").read_text().splitlines()
                   for code in CODES} for name in ("plain", "mixed")}
    # Monolingual text, treebanks and the languages outside the switching set are unchanged.
    for code in CODES:
        assert text["mixed"][code][:60] == text["plain"][code]
    assert text["mixed"]["xc"] == text["plain"]["xc"] and text["mixed"]["xd"] == text["plain"]["xd"]
    for path in demo_data_paths(tmp_path / "plain" / "ud", tmp_path / "plain" / "demo", CODES):
        if "conllu" in path.name:
            assert filecmp.cmp(path, tmp_path / "mixed" / path.relative_to(tmp_path / "plain"), shallow=False)
    assert mixed["languages"]["xa"]["pretrain_code_switched"] == 30
    assert plain["languages"]["xa"]["pretrain_code_switched"] == 0
    # The added sentences mix the two languages: xb's Cyrillic content words inside xa's sentences.
    lexicons = build_lexicons(0.5, 0)
    xb_stems = set(lexicons["xb"].nouns) | set(lexicons["xb"].verbs) | set(lexicons["xb"].adjectives)
    added = text["mixed"]["xa"][60:]
    assert len(added) == 30
    cyrillic = [line for line in added if any("CYRILLIC" in unicodedata.name(ch, "") for ch in line)]
    latin = [line for line in added if any(ch.isascii() and ch.isalpha() for ch in line)]
    assert len(cyrillic) >= 20 and len(set(cyrillic) & set(latin)) >= 20
    words = {w for line in added for w in line.split()}
    assert any(stem in word for word in words for stem in xb_stems)


def test_code_switching_settings_name_the_config_key(tmp_path):
    settings = {"ud_root": tmp_path / "ud", "demo_dir": tmp_path / "demo", "languages": ["xa", "xb"],
                "treebank_sentences": 20, "pretrain_sentences": 5, "parallel_sentences": 5}
    with pytest.raises(ValueError, match="demo.code_switching: a share"):
        generate_demo_data(**settings, code_switching=1.5)
    with pytest.raises(ValueError, match="demo.code_switching_languages"):
        generate_demo_data(**settings, code_switching=0.2, code_switching_languages=["xa", "xc"])

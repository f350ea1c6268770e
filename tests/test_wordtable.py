import collections
import logging
from pathlib import Path

import pytest

from xlprobe.io import read_tsv
from xlprobe.wordtable import BASE_COLUMNS, build_word_table, read_word_table, word_table

WORDS = {"split": {"train": 0.8, "dev": 0.1, "test": 0.1}, "min_count": 20, "max_subwords": 2048}

DU = """# sent_id = fr-1
1	Il	il	PRON	_	Number=Sing|Person=3	2	nsubj	_	_
2	parle	parler	VERB	_	Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin	0	root	_	_
3-4	du	_	_	_	_	_	_	_	_
3	de	de	ADP	_	_	5	case	_	_
4	le	le	DET	_	Definite=Def|Gender=Masc|Number=Sing|PronType=Art	5	det	_	_
5	film	_	NOUN	_	Gender=Masc|Number=Sing	2	obl	_	_
5.1	parle	parler	VERB	_	_	_	_	2:conj	_

"""


def one_word_sentence(sent_id, form, feats="Number=Sing"):
    return f"# sent_id = {sent_id}\n1\t{form}\t{form}\tNOUN\t_\t{feats}\t0\troot\t_\t_\n\n"


def test_multiword_token_row(tmp_path):
    path = tmp_path / "fr-ud-dev.conllu"
    path.write_text(DU, encoding="utf-8")
    table = word_table([path], "fr", WORDS["split"], seed=0)
    assert list(table.columns[:7]) == BASE_COLUMNS
    assert table["word_id"].tolist() == ["1", "2", "3-4", "5"]  # empty node 5.1 dropped
    du = table.iloc[2]
    assert (du.form, du.lemma, du.upos) == ("du", "de+le", "ADP+DET")
    assert du.tags == "ADP;DEF;DET;MASC;SG"
    # ADP and DET are both Part of Speech: dropped; the rest comes from "le" alone
    assert du["Definiteness"] == "DEF" and du["Gender and Noun Class"] == "MASC" and du["Number"] == "SG"
    assert table.isna().loc[2, "Part of Speech"]
    assert table.iloc[3].lemma == "film"  # missing lemma `_`: the form stands in
    parle = table.iloc[1]
    assert (parle["Part of Speech"], parle["Person"], parle["Tense"], parle["Mood"]) == (
        "V",
        "3",
        "PRS",
        "IND",
    )


def test_sentence_ids_follow_sorted_file_names(tmp_path):
    folder = tmp_path / "UD_Test"
    folder.mkdir()
    (folder / "xx-ud-train.conllu").write_text(one_word_sentence("t1", "c") + one_word_sentence("t2", "d"))
    (folder / "xx-ud-dev.conllu").write_text(one_word_sentence("d1", "a"))
    (folder / "xx-ud-test.conllu").write_text(one_word_sentence("s1", "b"))
    files = sorted(folder.glob("*.conllu"), reverse=True)
    table = word_table(files, "en", WORDS["split"], seed=0)
    assert table["sentence_id"].tolist() == [0, 1, 2, 3]
    assert table["form"].tolist() == ["a", "b", "c", "d"]  # dev, test, train
    # a directory stands for its files
    out = tmp_path / "out"
    build_word_table(
        [folder], out / "w.tsv", out / "w.attributes.tsv", {"id": "xx", "language": "en"}, WORDS, 0
    )
    assert read_tsv(out / "w.tsv")["form"].tolist() == ["a", "b", "c", "d"]


def test_no_probeable_attribute_still_writes_both_files(tmp_path, caplog):
    path = tmp_path / "xx-ud-test.conllu"
    path.write_text("".join(one_word_sentence(i, f"w{i}") for i in range(30)))
    words, attributes = tmp_path / "r" / "xx.tsv", tmp_path / "r" / "xx.attributes.tsv"
    with caplog.at_level(logging.WARNING):
        summary = build_word_table([path], words, attributes, {"id": "xx", "language": "xx"}, WORDS, 0)
    assert summary["probed_attributes"] == []
    assert "treebank xx: no attribute has >= 2 values" in caplog.text
    table = read_tsv(attributes)
    assert list(table.columns) == ["attribute", "value", "train", "dev", "test", "kept"]
    assert len(table) == 2 and not table["kept"].any()  # Part of Speech N, Number SG: one value each
    assert len(read_tsv(words)) == 30


def test_missing_treebank_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="treebank 'xx': no .conllu files"):
        build_word_table(
            [tmp_path], tmp_path / "a.tsv", tmp_path / "b.tsv", {"id": "xx", "language": "en"}, WORDS, 0
        )


def test_real_treebank_files_agree(shared_data, tmp_path):
    folder = shared_data / "ud-2.1" / "UD_Marathi"
    files = sorted(str(p) for p in folder.glob("*.conllu"))
    words, attributes = tmp_path / "mr.tsv", tmp_path / "mr.attributes.tsv"
    build_word_table(
        files, words, attributes, {"id": "mr", "folder": "UD_Marathi", "language": "mr"}, WORDS, 0
    )
    table = read_word_table(words)
    counts = read_tsv(attributes)

    # rows = surface tokens, counted from the raw lines
    surface = 0
    for path in files:
        covered = 0
        for line in Path(path).read_text(encoding="utf-8").splitlines(keepends=True):
            identifier = line.split("\t", 1)[0]
            if line.startswith("#") or "\t" not in line or "." in identifier:
                continue
            if "-" in identifier:
                first, last = map(int, identifier.split("-"))
                covered += last - first + 1
            surface += 1
        surface -= covered
    assert len(table) == surface
    sentence_ids = table["sentence_id"].astype(int)  # read as text, like every column
    assert sentence_ids.is_monotonic_increasing and sentence_ids.iloc[-1] == 465
    assert set(table["Person"].dropna()) == {"1", "2", "3"}
    assert (table.groupby("lemma")["split"].nunique() == 1).all()

    # the attribute table counts what the word table holds
    for row in counts.itertuples():
        in_table = collections.Counter(table.loc[table[row.attribute] == str(row.value), "split"])
        assert (row.train, row.dev, row.test) == (in_table["train"], in_table["dev"], in_table["test"])
        assert not row.kept or min(row.train, row.dev, row.test) >= 20
    kept = counts[counts["kept"]].groupby("attribute").size()
    assert (kept >= 2).all()


def test_bad_words_config_fails_before_reading(tmp_path):
    bad = {"split": {"train": 0.9, "dev": 0.1}, "min_count": 20}
    with pytest.raises(ValueError, match="config words.split"):
        build_word_table(
            [tmp_path], tmp_path / "a.tsv", tmp_path / "b.tsv", {"id": "xx", "language": "en"}, bad, 0
        )


def test_probed_attributes_reads_the_kept_rows_and_names_a_wrong_file(tmp_path):
    from xlprobe.wordtable import probed_attributes

    table = tmp_path / "xx.attributes.tsv"
    table.write_text(
        "attribute\tvalue\ttrain\tdev\ttest\tkept\n"
        "Number\tSG\t90\t30\t25\tTrue\nNumber\tPL\t40\t21\t20\tTrue\n"
        "Case\tNOM\t50\t5\t30\tFalse\nTense\tPST\t80\t25\t25\tTrue\n"
    )
    assert probed_attributes(table) == ["Number", "Tense"]
    table.write_text("attribute\tvalue\tkept\nCase\tNOM\tFalse\n")
    assert probed_attributes(table) == []
    # One parser of `kept` for the DAG and the probes: any case, never a silent false.
    table.write_text("attribute\tvalue\tkept\nCase\tNOM\ttrue\nCase\tACC\tTRUE\n")
    assert probed_attributes(table) == ["Case"]
    table.write_text("attribute\tvalue\tkept\nCase\tNOM\tTrue\nCase\tACC\tyes\n")
    with pytest.raises(ValueError, match=r"xx\.attributes\.tsv, line 3: 'kept' must be true or false"):
        probed_attributes(table)
    wrong = tmp_path / "xx.tsv"
    wrong.write_text("form\tlemma\nhouse\thouse\n")
    with pytest.raises(ValueError, match=r"xx\.tsv: not an attribute table"):
        probed_attributes(wrong)

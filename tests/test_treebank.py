import re

import pytest

from xlprobe.treebank import CoNLLUError, check_token_line, read_conllu, read_treebank

FRENCH = """# newdoc id = d1
# sent_id = s1
# text = Il parle du film.
1	Il	il	PRON	_	Number=Sing|Person=3	2	nsubj	_	_
2	parle	parler	VERB	_	Mood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin	0	root	_	_
3-4	du	_	_	_	_	_	_	_	_
3	de	de	ADP	_	_	5	case	_	_
4	le	le	DET	_	Definite=Def|Gender=Masc|Number=Sing|PronType=Art	5	det	_	_
5	film	film	NOUN	_	Gender=Masc|Number=Sing	2	obl	_	SpaceAfter=No
5.1	parle	parler	VERB	_	_	_	_	2:conj	_
6	.	.	PUNCT	_	_	2	punct	_	_

# sent_id = s2
1	Oui	oui	INTJ	_	_	0	root	_	_
"""


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_multiword_tokens_kept_empty_nodes_dropped(tmp_path):
    first, second = read_conllu(write(tmp_path / "fr-ud-dev.conllu", FRENCH))
    assert first.sent_id == "s1" and second.sent_id == "s2"
    assert [t.id for t in first.tokens] == ["1", "2", "3-4", "5", "6"]
    assert [t.form for t in first.tokens] == ["Il", "parle", "du", "film", "."]
    du = first.tokens[2]
    assert du.is_multiword and [w.lemma for w in du.words] == ["de", "le"]
    assert du.words[1].feats == "Definite=Def|Gender=Masc|Number=Sing|PronType=Art"
    assert not first.tokens[3].is_multiword
    assert first.line == 1 and second.line == 13


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("2\tparle\tparler\tVERB\t_\t_\t0\troot\t_", "expected 10 tab-separated columns, found 9"),
        ("x\tparle\tparler\tVERB\t_\t_\t0\troot\t_\t_", "'x' is not a valid ID"),
        ("2\tparle\tparler\tVERB\t_\t_\tzero\troot\t_\t_", "'zero' is not a valid value"),
        ("3\tparle\tparler\tVERB\t_\t_\t0\troot\t_\t_", "word ID 3 out of sequence"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    lines = FRENCH.splitlines()
    lines[4] = bad_line  # line 5 of the file
    path = write(tmp_path / "bad.conllu", "\n".join(lines) + "\n")
    with pytest.raises(CoNLLUError, match=re.escape(f"{path}:5: ")) as error:
        list(read_conllu(path))
    assert message in str(error.value)


def test_multiword_range_over_missing_words(tmp_path):
    text = "1-3\tdu\t_\t_\t_\t_\t_\t_\t_\t_\n1\tde\tde\tADP\t_\t_\t0\troot\t_\t_\n2\tle\tle\tDET\t_\t_\t1\tdet\t_\t_\n"
    path = write(tmp_path / "range.conllu", text)
    with pytest.raises(CoNLLUError, match=f"{re.escape(str(path))}:1: multiword token 1-3"):
        list(read_conllu(path))


def test_check_token_line():
    assert check_token_line("1\ta\ta\tX\t_\t_\t0\troot\t_\t_", "f", 3)[1] == "a"
    with pytest.raises(CoNLLUError, match="^f:3: "):
        check_token_line("1 a a X _ _ 0 root _ _", "f", 3)


def test_pooled_files_in_sorted_name_order(tmp_path):
    one = "# sent_id = {0}\n1\t{0}\t{0}\tX\t_\t_\t0\troot\t_\t_\n\n"
    paths = [
        write(tmp_path / "xx-ud-train.conllu", one.format("train")),
        write(tmp_path / "xx-ud-dev.conllu", one.format("dev")),
        write(tmp_path / "xx-ud-test.conllu", one.format("test")),
    ]
    for order in (paths, paths[::-1]):
        assert [s.sent_id for s in read_treebank(order)] == ["dev", "test", "train"]


def test_real_french_treebank_counts(shared_data):
    path = shared_data / "ud-2.1" / "UD_French" / "fr-ud-test.conllu"
    # independent count from the raw lines: words, ranges, the words the ranges cover
    words = ranges = covered = sentences = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        identifier = line.split("\t", 1)[0]
        if identifier.isdigit():
            words += 1
        elif "-" in identifier and not line.startswith("#"):
            first, last = map(int, identifier.split("-"))
            ranges += 1
            covered += last - first + 1
        elif line.startswith("# sent_id"):
            sentences += 1
    parsed = list(read_conllu(path))
    tokens = [t for s in parsed for t in s.tokens]
    assert len(parsed) == sentences
    assert sum(t.is_multiword for t in tokens) == ranges > 0
    assert len(tokens) == words - covered + ranges
    assert sum(len(t.words) for t in tokens) == words

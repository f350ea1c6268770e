import pytest

from xlprobe import unimorph
from xlprobe.cli import main as cli
from xlprobe.unimorph import Converter, agreement, convert_file, dimensions, generic_tags, tags_to_attributes

# reference folder -> the language code its treebank is configured with
REFERENCE_LANGUAGES = {
    "UD_Catalan": "ca",
    "UD_Chinese": "zh",
    "UD_Chinese-CFL": "zh",
    "UD_English": "en",
    "UD_French": "fr",
    "UD_Marathi": "mr",
    "UD_Portuguese": "pt",
    "UD_Spanish": "es",
    "UD_Tamil": "ta",
    "UD_Vietnamese": "vi",
}


def test_generic_table_multivalued_and_layered_features():
    assert generic_tags("NOUN", "Case=Ine|Number=Sing") == ["N", "IN+ESS", "SG"]
    assert generic_tags("PRON", "Case=Acc,Dat|PronType=Prs") == ["PRO", "{ACC/DAT}"]
    assert generic_tags("PRON", "PronType=Int,Rel") == ["PRO"]  # no value maps: nothing
    assert generic_tags("DET", "Number[psor]=Plur|Person[psor]=3|Poss=Yes") == ["DET", "PSS3P"]
    assert generic_tags("DET", "Number[psor]=Sing") == ["DET", "PSSS"]
    basque = "Number[abs]=Plur|Number[erg]=Sing|Person[abs]=3|Person[erg]=1|Gender[erg]=Masc|Mood=Ind"
    assert generic_tags("AUX", basque) == ["V", "ARGAB3P", "ARGER1S", "IND"]
    assert generic_tags("NOUN", "Number[psed]=Plur|Number=Plur") == ["N", "PL"]
    assert generic_tags("PUNCT", "_") == []
    assert generic_tags("X", "Foreign=Yes") == []


def test_language_rules_and_unknown_codes():
    present = ("VERB", "Mood=Ind|Tense=Pres|VerbForm=Fin")
    assert Converter("en").tags(*present) == ("NFIN", "V")  # FIN, IND removed, then {V, PRS} -> {V, NFIN}
    assert Converter("xa").tags(*present) == ("FIN", "IND", "PRS", "V")  # demo code: generic table only
    assert Converter("en").tags("VERB", "VerbForm=Ger") == ("PRS", "V", "V.PTCP")
    participle = ("VERB", "Gender=Masc|Number=Sing|Tense=Past|VerbForm=Part")
    assert Converter("pt").tags(*participle, "falado") == ("MASC", "PST", "SG", "V.PTCP")
    assert Converter("pt").tags(*participle, "falada") == ("MASC", "PST", "SG", "V.PTCP")
    assert Converter("pt").tags("VERB", "Tense=Past|VerbForm=Part", "falado") == (
        "MASC",
        "PST",
        "SG",
        "V.PTCP",
    )
    assert Converter("pt").tags("VERB", "Tense=Past|VerbForm=Part", "falada") == ("PST", "V.PTCP")
    subjunctive = ("VERB", "Mood=Sub|Number=Sing|Person=3|Tense=Imp|VerbForm=Fin")
    assert Converter("es").tags(*subjunctive, "hablara") == ("3", "LGSPEC1", "PST", "SBJV", "SG", "V")
    assert Converter("es").tags(*subjunctive, "hablase") == ("3", "PST", "SBJV", "SG", "V")
    assert Converter("ur").tags("NOUN", "Case=Nom|Gender=Masc|Number=Sing|Person=3") == ("N", "NOM", "SG")
    assert Converter("ur").tags("PRON", "Gender=Fem|Number=Sing|Person=3") == ("3", "PRO", "SG")


def test_bad_rule_is_reported():
    with pytest.raises(ValueError, match="language_rules.yaml: xx: unknown action"):
        unimorph._check_rule({"then": [{"drop": ["V"]}]}, "language_rules.yaml: xx")
    with pytest.raises(ValueError, match="unknown condition"):
        unimorph._check_rule({"if": {"contains": ["V"]}, "then": []}, "language_rules.yaml: xx")


def test_schema_has_the_24_dimensions():
    dims = dimensions()
    assert len(dims) == 24 and dims[0] == "Part of Speech" and dims[-1] == "Voice"
    assert unimorph.schema()["ON"] == "Case" and unimorph.schema()["3"] == "Person"


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["N", "IN+ESS", "SG"], {"Part of Speech": "N", "Case": "ESS+IN", "Number": "SG"}),
        (["MASC+FEM", "N"], {"Gender and Noun Class": "FEM+MASC", "Part of Speech": "N"}),
        (["PRO", "{ACC/DAT}"], {"Part of Speech": "PRO"}),
        # Basque auxiliaries agree with two arguments: one dimension, the last tag in sorted order wins
        (["V", "ARGER3S", "ARGAB3P"], {"Part of Speech": "V", "Argument Marking": "ER3S"}),
        (["V", "ARGAB3P"], {"Part of Speech": "V", "Argument Marking": "AB3P"}),
        (["NDEF", "N"], {"Definiteness": "INDF", "Part of Speech": "N"}),
        (["DET", "PSS3P"], {"Part of Speech": "DET", "Possession": "PSS3P"}),
        (["V", "LGSPEC1", "DIST", "GRPA", "{CMPR}"], {"Part of Speech": "V", "Comparison": "CMPR"}),
        (["PRS", "V", "V.PTCP"], {"Tense": "PRS", "Part of Speech": "V.PTCP"}),
        (["PST+PRF", "V"], {"Tense": "PST+PRF", "Part of Speech": "V"}),
        (["ON+ESS"], {"Case": "ESS+ON"}),
        ([], {}),
    ],
)
def test_tags_to_attributes(tags, expected):
    assert tags_to_attributes(tags) == expected


def test_agreement_with_reference_converter(shared_data, tmp_path, capsys):
    reference_root = shared_data / "ud-2.1-unimorph-reference"
    lines = []
    for folder, language in REFERENCE_LANGUAGES.items():
        reference = unimorph.reference_path(reference_root, folder)
        source = shared_data / "ud-2.1" / folder / reference.name.replace("-um-", "-ud-")
        ours = tmp_path / reference.name
        convert_file(source, ours, language=language)
        agree, total, differences = agreement(ours, reference)
        lines.append(f"{folder:16} {language}  {agree:6d}/{total:6d}  {100 * agree / total:7.3f}%")
        assert agree / total >= 0.995, (folder, differences[:10])
    with capsys.disabled():
        print("\nUD -> UniMorph agreement with the reference converter, token by token:")
        print("\n".join(lines))


def test_agreement_counts_differences(tmp_path):
    a = tmp_path / "a.conllu"
    b = tmp_path / "b.conllu"
    a.write_text("# c\n1\tx\tx\tN\t_\tN;SG\t0\troot\t_\t_\n2\ty\ty\tV\t_\tV\t1\tobj\t_\t_\n")
    b.write_text("# c\n1\tx\tx\tN\t_\tSG;N\t0\troot\t_\t_\n2\ty\ty\tV\t_\t_\t1\tobj\t_\t_\n")
    assert agreement(a, b) == (1, 2, [(3, "y", "V", "_")])


def test_cli_to_unimorph_matches_reference_bytes(shared_data, tmp_path):
    source = shared_data / "ud-2.1" / "UD_English" / "en-ud-dev.conllu"
    reference = shared_data / "ud-2.1-unimorph-reference" / "UD_English" / "en-um-dev.conllu"
    output = tmp_path / "en-um-dev.conllu"
    assert cli(["to-unimorph", "--language", "en", "--input", str(source), "--output", str(output)]) == 0
    assert output.read_bytes() == reference.read_bytes()


def test_convert_file_keeps_other_columns(tmp_path):
    source = tmp_path / "x-ud-dev.conllu"
    source.write_text(
        "# sent_id = 1\n"
        "1-2\tdu\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "1\tde\tde\tADP\tP\t_\t3\tcase\t_\t_\n"
        "2\tle\tle\tDET\tD\tDefinite=Def|Gender=Masc|Number=Sing|PronType=Art\t3\tdet\t_\t_\n"
        "3\tfilm\tfilm\tNOUN\tN\tNumber=Sing\t0\troot\t_\tSpaceAfter=No\n\n"
    )
    output = tmp_path / "x-um-dev.conllu"
    assert convert_file(source, output, language="fr") == {"tokens": 4, "tagged": 3}
    assert output.read_text().splitlines() == [
        "# sent_id = 1",
        "1-2\tdu\t_\t_\t_\t_\t_\t_\t_\t_",
        "1\tde\tde\tADP\tP\tADP\t3\tcase\t_\t_",
        "2\tle\tle\tDET\tD\tDEF;DET;MASC;SG\t3\tdet\t_\t_",
        "3\tfilm\tfilm\tNOUN\tN\tN;SG\t0\troot\t_\tSpaceAfter=No",
        "",
    ]


def test_convert_file_bad_line(tmp_path):
    source = tmp_path / "bad.conllu"
    source.write_text("# c\n1\tx\tx\tN\t_\t_\t0\troot\t_\n")
    with pytest.raises(ValueError, match=f"{source}:2: malformed CoNLL-U line"):
        convert_file(source, tmp_path / "out.conllu", language="en")
    assert not (tmp_path / "out.conllu").exists()

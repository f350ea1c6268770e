"""Synthetic multilingual languages for the embedded demo.

Four artificial languages share one inventory of concepts (nouns, verbs, adjectives, adpositions,
numerals, proper names) and one set of morphosyntactic attributes, but realize them with their own
stems, scripts, affixes and word orders. Read top to bottom:

1. `LanguageSpec` and `LANGUAGES`: how each language marks Number, Gender, Case, Tense and Person.
2. `build_lexicons`: seeded stems per language; the "anchor" words (numerals, names, punctuation)
   spelled alike in every language for a `shared_vocabulary` fraction of them.
3. `sample_sentence`: an abstract sentence (concepts and features), language independent.
4. `render`: that sentence in one language, as UD tokens with FEATS, heads and relations.
5. `generate_demo_data`: treebanks (CoNLL-U), pre-training text and parallel text on disk.

Agreement (adjective/determiner with noun, verb with subject) gives a language model a reason to
encode the attributes that the probes later look for.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from xlprobe.io import write_json, write_text
from xlprobe.provenance import provenance

log = logging.getLogger(__name__)

SPLITS = {"train": 0.8, "dev": 0.1, "test": 0.1}
MIN_WORDS, MAX_WORDS = 4, 20


# ----------------------------------------------------------------------------- language specs
@dataclass(frozen=True)
class Slot:
    """One affix position: the features it spells (space-joined values) -> morpheme."""

    features: tuple[str, ...]
    forms: dict[str, str]


@dataclass(frozen=True)
class LanguageSpec:
    code: str
    name: str
    onsets: tuple[str, ...]
    vowels: tuple[str, ...]
    codas: tuple[str, ...]
    affixation: str  # "suffix" or "prefix"
    order: str  # order of subject, verb, object: "SVO", "SOV", "VSO", ...
    adjective_before_noun: bool
    adpositions: str  # "pre" or "post"
    gender: bool
    case: str | None  # None, "nom-acc" or "erg-abs"
    adjective_case: bool  # adjectives and determiners agree in case too
    tenses: tuple[str, ...]
    articles: bool  # definite/indefinite articles besides demonstratives
    determiner_roots: dict[str, str]  # "def"/"ind"/"dem" -> root
    infinitive: str  # the verb's citation affix
    slots: dict[str, tuple[Slot, ...]]  # UPOS -> affix slots, innermost first
    punctuation: dict[str, str]  # own spelling of ".", ",", "?"

    @property
    def base_case(self) -> str:
        return "Abs" if self.case == "erg-abs" else "Nom"


def _slot(features: str, **forms: str) -> Slot:
    """`_slot("Gender Number", Masc_Sing="o")`: keys are the feature values joined by `_`."""
    return Slot(tuple(features.split()), {key.replace("_", " "): v for key, v in forms.items()})


def _person_number(s1: str, s2: str, s3: str, p1: str, p2: str, p3: str) -> Slot:
    forms = {"1 Sing": s1, "2 Sing": s2, "3 Sing": s3, "1 Plur": p1, "2 Plur": p2, "3 Plur": p3}
    return Slot(("Person", "Number"), forms)


_XA_AGREEMENT = _slot("Gender Number", Masc_Sing="o", Masc_Plur="i", Fem_Sing="a", Fem_Plur="e")
_XB_CASE = _slot("Case", Nom="", Acc="ны", Dat="га")
_XC_CASE = _slot("Case", Abs="", Erg="ερ", Dat="δι")
_XC_AGREEMENT = _slot("Gender Number", Masc_Sing="λο", Masc_Plur="λοι", Fem_Sing="λα", Fem_Plur="λαι")
_XD_CASE = _slot("Case", Nom="", Acc="ik", Dat="nu")

LANGUAGES: dict[str, LanguageSpec] = {
    # Romance-like: suffixes fuse gender and number, SVO, adjective after the noun, articles.
    "xa": LanguageSpec(
        code="xa",
        name="Synth-Xa",
        onsets=("p", "t", "k", "b", "d", "g", "m", "n", "l", "r", "s", "f", "v", "pr", "tr", "br"),
        vowels=("a", "e", "i", "o", "u"),
        codas=("n", "r", "l", "s"),
        affixation="suffix",
        order="SVO",
        adjective_before_noun=False,
        adpositions="pre",
        gender=True,
        case=None,
        adjective_case=False,
        tenses=("Pres", "Past", "Fut"),
        articles=True,
        determiner_roots={"def": "l", "ind": "un", "dem": "kest"},
        infinitive="are",
        slots={
            "NOUN": (_XA_AGREEMENT,),
            "ADJ": (_XA_AGREEMENT,),
            "DET": (_XA_AGREEMENT,),
            "VERB": (
                _slot("Tense", Pres="", Past="av", Fut="er"),
                _person_number("o", "is", "a", "amo", "ate", "ano"),
            ),
        },
        punctuation={".": ".", ",": ",", "?": "?"},
    ),
    # Turkic-like in Cyrillic letters: agglutinative suffixes, SOV, postpositions, three cases.
    "xb": LanguageSpec(
        code="xb",
        name="Synth-Xb",
        onsets=("б", "д", "г", "к", "л", "м", "н", "п", "р", "с", "т", "ш", "ж", "з", "ч"),
        vowels=("а", "е", "и", "о", "у", "ы"),
        codas=("н", "р", "л", "к", "т", "ш"),
        affixation="suffix",
        order="SOV",
        adjective_before_noun=True,
        adpositions="post",
        gender=False,
        case="nom-acc",
        adjective_case=True,
        tenses=("Pres", "Past"),
        articles=False,
        determiner_roots={"dem": "бу"},
        infinitive="мак",
        slots={
            "NOUN": (_slot("Number", Sing="", Plur="лар"), _XB_CASE),
            "ADJ": (_slot("Number", Sing="", Plur="ы"), _slot("Case", Nom="", Acc="н", Dat="м")),
            "DET": (_slot("Number", Sing="", Plur="ы"), _slot("Case", Nom="", Acc="н", Dat="м")),
            "PRON": (_XB_CASE,),
            "VERB": (
                _slot("Tense", Pres="а", Past="ды"),
                _person_number("м", "сың", "", "мыз", "сыз", "лар"),
            ),
        },
        punctuation={".": "։", ",": "՝", "?": "՞"},
    ),
    # Greek letters, prefixes only, verb first (VSO), ergative-absolutive case, articles.
    "xc": LanguageSpec(
        code="xc",
        name="Synth-Xc",
        onsets=("π", "τ", "κ", "μ", "ν", "λ", "ρ", "σ", "θ", "φ", "χ", "δ", "γ"),
        vowels=("α", "ε", "ι", "ο", "υ", "η", "ω"),
        codas=("ν", "ς", "ρ"),
        affixation="prefix",
        order="VSO",
        adjective_before_noun=False,
        adpositions="pre",
        gender=True,
        case="erg-abs",
        adjective_case=False,
        tenses=("Pres", "Past", "Fut"),
        articles=True,
        determiner_roots={"def": "τα", "ind": "ενα", "dem": "αυτο"},
        infinitive="να",
        slots={
            "NOUN": (
                _slot("Gender Number", Masc_Sing="ο", Masc_Plur="οι", Fem_Sing="α", Fem_Plur="αι"),
                _XC_CASE,
            ),
            "ADJ": (_XC_AGREEMENT,),
            "DET": (_XC_AGREEMENT,),
            "PRON": (_XC_CASE,),
            "VERB": (
                _person_number("μι", "σι", "", "με", "τε", "ντι"),
                _slot("Tense", Pres="", Past="ε", Fut="θα"),
            ),
        },
        punctuation={".": "。", ",": "、", "?": "؟"},
    ),
    # Latin letters with other phonotactics: prefixes, SVO, adjective before the noun, three cases.
    "xd": LanguageSpec(
        code="xd",
        name="Synth-Xd",
        onsets=("k", "z", "x", "q", "t", "n", "m", "s", "h", "w", "y"),
        vowels=("a", "i", "u"),
        codas=("k", "q", "n", "x", "m"),
        affixation="prefix",
        order="SVO",
        adjective_before_noun=True,
        adpositions="pre",
        gender=False,
        case="nom-acc",
        adjective_case=False,
        tenses=("Pres", "Past", "Fut"),
        articles=False,
        determiner_roots={"dem": "hak"},
        infinitive="i",
        slots={
            "NOUN": (_slot("Number", Sing="", Plur="ma"), _XD_CASE),
            "ADJ": (_slot("Number", Sing="", Plur="ma"),),
            "DET": (_slot("Number", Sing="", Plur="ma"),),
            "PRON": (_XD_CASE,),
            "VERB": (
                _person_number("ni", "ku", "", "tu", "hu", "wa"),
                _slot("Tense", Pres="", Past="ta", Fut="zu"),
            ),
        },
        punctuation={".": "।", ",": "،", "?": "⸮"},
    ),
}


def inflect(spec: LanguageSpec, stem: str, upos: str, feats: dict[str, str]) -> str:
    """Attach the affixes of `upos` that spell `feats`, innermost slot first."""
    word = stem
    for slot in spec.slots.get(upos, ()):
        if all(name in feats for name in slot.features):
            morpheme = slot.forms[" ".join(feats[name] for name in slot.features)]
            word = word + morpheme if spec.affixation == "suffix" else morpheme + word
    return word


# ----------------------------------------------------------------------------- shared concepts
N_NOUNS, N_VERBS, N_ADJECTIVES, N_ADPOSITIONS = 200, 240, 60, 8
N_NUMERALS, N_NAMES = 12, 30
LINKERS = (("and", "CCONJ"), ("but", "CCONJ"), ("because", "SCONJ"))
PUNCTUATION = (".", ",", "?")
PERSONS = (("1", "Sing"), ("2", "Sing"), ("3", "Sing"), ("1", "Plur"), ("2", "Plur"), ("3", "Plur"))


def verb_valency(verb: int) -> int:
    """Arguments besides the subject, interleaved over frequency ranks: 3 in 10 intransitive,
    5 transitive, 2 ditransitive."""
    return (0, 1, 1, 0, 1, 2, 1, 0, 1, 2)[verb % 10]


def name_gender(name: int) -> str:
    return ("Masc", "Fem")[name % 2]


class Distribution:
    """A fixed categorical distribution, drawn from fast (bisect on cumulative weights)."""

    def __init__(self, weights: dict):
        self.values = list(weights)
        self.cumulative = list(itertools.accumulate(weights.values()))

    @classmethod
    def zipf(cls, n: int, offset: float = 8.0) -> Distribution:
        """Zipf-Mandelbrot over ranks 0..n-1, weight 1/(rank + 1 + offset): a heavy head without one
        lemma so frequent that a lemma-disjoint split would be lopsided."""
        return cls({rank: 1.0 / (rank + 1 + offset) for rank in range(n)})

    def draw(self, rng: random.Random):
        return self.values[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


NOUNS, VERBS, ADJECTIVES = (
    Distribution.zipf(N_NOUNS),
    Distribution.zipf(N_VERBS, 40),
    Distribution.zipf(N_ADJECTIVES),
)
ADPOSITIONS, NAMES = Distribution.zipf(N_ADPOSITIONS), Distribution.zipf(N_NAMES)
# Persons and tenses are kept fairly even so that every value survives a lemma-disjoint split.
PERSON = Distribution({"1": 0.37, "2": 0.35, "3": 0.28})
NUMBER = Distribution({"Sing": 0.6, "Plur": 0.4})
TENSE = Distribution({"Pres": 0.4, "Past": 0.35, "Fut": 0.25})
SUBJECT = Distribution({"pronoun": 0.55, "name": 0.12, "noun": 0.33})
OBJECT = Distribution({"noun": 0.7, "pronoun": 0.2, "name": 0.1})
INDIRECT_OBJECT = Distribution({"noun": 0.5, "pronoun": 0.3, "name": 0.2})
OBLIQUE = Distribution({"noun": 0.85, "name": 0.15})
DETERMINER = Distribution({"def": 0.35, "ind": 0.2, "dem": 0.15, None: 0.3})
DETERMINER_WITH_NUMERAL = Distribution({"def": 0.4, None: 0.6})
MODIFIER_COUNT = Distribution({0: 0.6, 1: 0.32, 2: 0.08})  # adjectives per noun, obliques per clause
LINKER = Distribution({0: 0.5, 1: 0.25, 2: 0.25})
P_NUMERAL, P_NOUN_MODIFIER, P_SECOND_CLAUSE, P_QUESTION = 0.12, 0.08, 0.45, 0.15


# ----------------------------------------------------------------------------- lexicons
@dataclass
class Lexicon:
    """One language's spelling of every concept; lemmas are citation forms."""

    spec: LanguageSpec
    nouns: list[str]
    noun_genders: list[str]
    verbs: list[str]
    adjectives: list[str]
    adpositions: list[str]
    linkers: list[str]
    pronouns: dict[tuple[str, str, str | None], str]  # (person, number, gender) -> root
    numerals: list[str]
    names: list[str]
    punctuation: dict[str, str]
    shared_anchors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        spec, base = self.spec, {"Case": self.spec.base_case} if self.spec.case else {}
        self.noun_lemmas = [
            inflect(spec, stem, "NOUN", {"Number": "Sing", **base, **({"Gender": g} if spec.gender else {})})
            for stem, g in zip(self.nouns, self.noun_genders)
        ]
        agreement = {"Number": "Sing", **({"Gender": "Masc"} if spec.gender else {})}
        if spec.adjective_case:
            agreement.update(base)
        self.adjective_lemmas = [inflect(spec, stem, "ADJ", agreement) for stem in self.adjectives]
        self.determiner_lemmas = {
            kind: inflect(spec, root, "DET", agreement) for kind, root in spec.determiner_roots.items()
        }
        self.pronoun_lemmas = {key: inflect(spec, root, "PRON", base) for key, root in self.pronouns.items()}
        self.verb_lemmas = [
            stem + spec.infinitive if spec.affixation == "suffix" else spec.infinitive + stem
            for stem in self.verbs
        ]
        # Content words back to their shared concept, for code-switching.
        self.concept_of_lemma = {
            (upos, lemma): (upos, i)
            for upos, lemmas in (("NOUN", self.noun_lemmas), ("VERB", self.verb_lemmas),
                                 ("ADJ", self.adjective_lemmas))
            for i, lemma in enumerate(lemmas)
        }

    def concept(self, token: Token) -> tuple[str, int] | None:
        """(UPOS, concept index) of a content word (noun, verb, adjective); None for other words."""
        return self.concept_of_lemma.get((token.upos, token.lemma))


def _anchor_keys() -> list[str]:
    return (
        [f"NUM:{i}" for i in range(N_NUMERALS)]
        + [f"PROPN:{i}" for i in range(N_NAMES)]
        + [f"PUNCT:{p}" for p in PUNCTUATION]
    )


def shared_anchor_keys(shared_vocabulary: float, seed: int) -> list[str]:
    """The anchors spelled alike everywhere: a seeded prefix of one permutation, so that a larger
    `shared_vocabulary` shares a superset of what a smaller one shares."""
    if not 0.0 <= shared_vocabulary <= 1.0:
        raise ValueError(f"demo.shared_vocabulary: must be in [0, 1], got {shared_vocabulary}")
    keys = _anchor_keys()
    random.Random(f"{seed}:anchor-sharing").shuffle(keys)
    return sorted(keys[: round(shared_vocabulary * len(keys))])


class _WordMaker:
    """Draws new words from a language's syllables, never the same one twice."""

    def __init__(self, spec: LanguageSpec, rng: random.Random, taken: set[str]):
        self.spec, self.rng, self.taken = spec, rng, taken

    def __call__(self, syllables: Sequence[int] = (1, 2, 2, 2, 3), coda: float = 0.35) -> str:
        for _ in range(1000):
            n = self.rng.choice(syllables)
            word = "".join(
                self.rng.choice(self.spec.onsets)
                + self.rng.choice(self.spec.vowels)
                + (self.rng.choice(self.spec.codas) if self.rng.random() < coda else "")
                for _ in range(n)
            )
            if word not in self.taken:
                self.taken.add(word)
                return word
        raise RuntimeError(f"{self.spec.code}: ran out of distinct words")


_SHARED_SPEC = LanguageSpec(
    code="shared",
    name="shared anchors",
    onsets=("t", "k", "m", "n", "l", "r", "s", "d", "b", "j", "v"),
    vowels=("a", "e", "i", "o", "u"),
    codas=("n", "l", "r", "s"),
    affixation="suffix",
    order="SVO",
    adjective_before_noun=True,
    adpositions="pre",
    gender=False,
    case=None,
    adjective_case=False,
    tenses=("Pres",),
    articles=False,
    determiner_roots={},
    infinitive="",
    slots={},
    punctuation={p: p for p in PUNCTUATION},
)


def build_lexicons(shared_vocabulary: float = 0.5, seed: int = 0) -> dict[str, Lexicon]:
    """Every language of `LANGUAGES`, built together so that own anchor spellings never coincide."""
    shared = shared_anchor_keys(shared_vocabulary, seed)
    taken_anchors: set[str] = set()
    # The common spelling: digits for numerals, one Latin-letter name per person, ASCII punctuation.
    make_shared = _WordMaker(_SHARED_SPEC, random.Random(f"{seed}:shared-anchors"), taken_anchors)
    common = {f"NUM:{i}": str(i + 1) for i in range(N_NUMERALS)}
    common.update({f"PROPN:{i}": make_shared((2, 2, 3), coda=0.3).capitalize() for i in range(N_NAMES)})
    common.update({f"PUNCT:{p}": p for p in PUNCTUATION})
    taken_anchors.update(word.lower() for word in common.values())

    lexicons = {}
    for code, spec in LANGUAGES.items():
        rng = random.Random(f"{seed}:lexicon:{code}")
        make = _WordMaker(spec, rng, set(spec.determiner_roots.values()))

        def function_word(make: _WordMaker = make) -> str:
            return make((1,), coda=0.3)  # closed classes: short words

        pronouns = {}
        for person, number in PERSONS:
            genders = ("Masc", "Fem") if spec.gender and person == "3" else (None,)
            for gender in genders:
                pronouns[(person, number, gender)] = function_word()
        lexicon_words = {
            "adpositions": [function_word() for _ in range(N_ADPOSITIONS)],
            "linkers": [function_word() for _ in LINKERS],
            "nouns": [make() for _ in range(N_NOUNS)],
            "noun_genders": [rng.choice(("Masc", "Fem")) for _ in range(N_NOUNS)],
            "verbs": [make() for _ in range(N_VERBS)],
            "adjectives": [make() for _ in range(N_ADJECTIVES)],
        }
        # Own anchor spellings come from their own stream, so sharing more changes nothing else.
        make_anchor = _WordMaker(spec, random.Random(f"{seed}:anchors:{code}"), taken_anchors | make.taken)
        own = {f"NUM:{i}": make_anchor((1, 2)) for i in range(N_NUMERALS)}
        own.update({f"PROPN:{i}": make_anchor((2, 2, 3)).capitalize() for i in range(N_NAMES)})
        own.update({f"PUNCT:{p}": spec.punctuation[p] for p in PUNCTUATION})
        taken_anchors.update(word.lower() for word in own.values())  # makers compare lower case
        spelled = {key: common[key] if key in shared else own[key] for key in common}
        lexicons[code] = Lexicon(
            spec=spec,
            pronouns=pronouns,
            numerals=[spelled[f"NUM:{i}"] for i in range(N_NUMERALS)],
            names=[spelled[f"PROPN:{i}"] for i in range(N_NAMES)],
            punctuation={p: spelled[f"PUNCT:{p}"] for p in PUNCTUATION},
            shared_anchors=shared,
            **lexicon_words,
        )
    return lexicons


# ----------------------------------------------------------------------------- abstract sentences
@dataclass
class Nominal:
    kind: str  # "noun", "name" or "pronoun"
    concept: int = 0  # noun or name index
    number: str = "Sing"
    person: str = "3"
    gender: str | None = None  # pronouns only; nouns and names carry their own
    determiner: str | None = None  # "def", "ind", "dem"
    numeral: int | None = None  # index into the numerals; 0 is "one"
    adjectives: list[int] = field(default_factory=list)
    modifier: Phrase | None = None  # a prepositional phrase on the noun (nmod)


@dataclass
class Phrase:
    adposition: int
    nominal: Nominal


@dataclass
class Clause:
    verb: int
    tense: str  # "Pres", "Past", "Fut"; a language without a future says "Pres"
    subject: Nominal
    object: Nominal | None = None
    indirect: Nominal | None = None
    obliques: list[Phrase] = field(default_factory=list)


@dataclass
class SyntheticSentence:
    clauses: list[Clause]
    linker: int | None = None  # index into LINKERS, joins clause 2 to clause 1
    question: bool = False


def _sample_nominal(rng: random.Random, kinds: Distribution, modifiers: bool = True) -> Nominal:
    kind = kinds.draw(rng)
    if kind == "pronoun":
        person, number = PERSON.draw(rng), NUMBER.draw(rng)
        return Nominal("pronoun", person=person, number=number, gender=rng.choice(("Masc", "Fem")))
    if kind == "name":
        return Nominal("name", concept=NAMES.draw(rng))
    nominal = Nominal("noun", concept=NOUNS.draw(rng), number=NUMBER.draw(rng))
    if rng.random() < P_NUMERAL:
        nominal.numeral = rng.randrange(N_NUMERALS)
        nominal.number = "Sing" if nominal.numeral == 0 else "Plur"
        nominal.determiner = DETERMINER_WITH_NUMERAL.draw(rng)
    else:
        nominal.determiner = DETERMINER.draw(rng)
    nominal.adjectives = [ADJECTIVES.draw(rng) for _ in range(MODIFIER_COUNT.draw(rng))]
    if modifiers and rng.random() < P_NOUN_MODIFIER:
        nominal.modifier = _sample_phrase(rng)
    return nominal


def _sample_phrase(rng: random.Random) -> Phrase:
    nominal = _sample_nominal(rng, OBLIQUE, modifiers=False)
    return Phrase(ADPOSITIONS.draw(rng), nominal)


def _sample_clause(rng: random.Random) -> Clause:
    verb = VERBS.draw(rng)
    clause = Clause(verb=verb, tense=TENSE.draw(rng), subject=_sample_nominal(rng, SUBJECT))
    if verb_valency(verb) >= 1:
        clause.object = _sample_nominal(rng, OBJECT)
    if verb_valency(verb) >= 2:
        clause.indirect = _sample_nominal(rng, INDIRECT_OBJECT)
    clause.obliques = [_sample_phrase(rng) for _ in range(MODIFIER_COUNT.draw(rng))]
    return clause


def sample_sentence(rng: random.Random) -> SyntheticSentence:
    """One abstract sentence: one clause, or two joined by a linker."""
    clauses = [_sample_clause(rng)]
    linker = None
    if rng.random() < P_SECOND_CLAUSE:
        clauses.append(_sample_clause(rng))
        linker = LINKER.draw(rng)
    return SyntheticSentence(clauses, linker, question=rng.random() < P_QUESTION)


# ----------------------------------------------------------------------------- rendering
@dataclass(eq=False)
class Token:
    form: str
    lemma: str
    upos: str
    feats: dict[str, str]
    deprel: str = "root"
    head: Token | None = None


def _case(spec: LanguageSpec, role: str) -> dict[str, str]:
    """Role -> Case feature. Roles: A (transitive subject), S (intransitive subject), O, IO, OBL."""
    if spec.case is None:
        return {}
    if role in ("IO", "OBL"):
        return {"Case": "Dat"}
    if spec.case == "nom-acc":
        return {"Case": "Nom" if role in ("A", "S") else "Acc"}
    return {"Case": "Erg" if role == "A" else "Abs"}


def _attach(dependent: Token, head: Token, deprel: str) -> None:
    dependent.head, dependent.deprel = head, deprel


def _render_nominal(nominal: Nominal, role: str, lex: Lexicon) -> tuple[list[Token], Token]:
    """The phrase's tokens in order and its head token (still unattached)."""
    spec, case = lex.spec, _case(lex.spec, role)
    if nominal.kind == "pronoun":
        gender = nominal.gender if spec.gender and nominal.person == "3" else None
        key = (nominal.person, nominal.number, gender)
        feats = {"Number": nominal.number, "Person": nominal.person, "PronType": "Prs", **case}
        if gender:
            feats["Gender"] = gender
        form = inflect(spec, lex.pronouns[key], "PRON", feats)
        token = Token(form, lex.pronoun_lemmas[key], "PRON", feats)
        return [token], token
    if nominal.kind == "name":
        feats = {"Number": "Sing", **case}
        if spec.gender:
            feats["Gender"] = name_gender(nominal.concept)
        name = lex.names[nominal.concept]  # names do not inflect: they stay anchors
        token = Token(name, name, "PROPN", feats)
        return [token], token

    agreement = {"Number": nominal.number}
    if spec.gender:
        agreement["Gender"] = lex.noun_genders[nominal.concept]
    noun_feats = {**agreement, **case}
    noun = Token(
        inflect(spec, lex.nouns[nominal.concept], "NOUN", noun_feats),
        lex.noun_lemmas[nominal.concept],
        "NOUN",
        noun_feats,
    )
    if spec.adjective_case:
        agreement.update(case)
    before: list[Token] = []
    kind = nominal.determiner
    if kind == "dem" or (
        kind in ("def", "ind") and spec.articles and not (kind == "ind" and nominal.number == "Plur")
    ):
        feats = {**agreement, "PronType": "Dem" if kind == "dem" else "Art"}
        if kind != "dem":
            feats["Definite"] = "Def" if kind == "def" else "Ind"
        det = Token(
            inflect(spec, spec.determiner_roots[kind], "DET", feats),
            lex.determiner_lemmas[kind],
            "DET",
            feats,
        )
        _attach(det, noun, "det")
        before.append(det)
    if nominal.numeral is not None:
        numeral = lex.numerals[nominal.numeral]
        token = Token(numeral, numeral, "NUM", {"NumType": "Card"})
        _attach(token, noun, "nummod")
        before.append(token)
    adjectives = []
    for adjective in nominal.adjectives:
        token = Token(
            inflect(spec, lex.adjectives[adjective], "ADJ", agreement),
            lex.adjective_lemmas[adjective],
            "ADJ",
            dict(agreement),
        )
        _attach(token, noun, "amod")
        adjectives.append(token)
    tokens = before + (adjectives + [noun] if spec.adjective_before_noun else [noun] + adjectives)
    if nominal.modifier is not None:
        phrase, head = _render_phrase(nominal.modifier, lex)
        _attach(head, noun, "nmod")
        tokens = tokens + phrase if spec.adpositions == "pre" else phrase + tokens
    return tokens, noun


def _render_phrase(phrase: Phrase, lex: Lexicon) -> tuple[list[Token], Token]:
    tokens, head = _render_nominal(phrase.nominal, "OBL", lex)
    form = lex.adpositions[phrase.adposition]
    adposition = Token(form, form, "ADP", {})
    _attach(adposition, head, "case")
    return ([adposition] + tokens if lex.spec.adpositions == "pre" else tokens + [adposition]), head


def _render_clause(clause: Clause, lex: Lexicon) -> tuple[list[Token], Token]:
    spec = lex.spec
    subject = clause.subject
    person = subject.person if subject.kind == "pronoun" else "3"
    number = subject.number if subject.kind != "name" else "Sing"
    tense = clause.tense if clause.tense in spec.tenses else "Pres"
    feats = {"Number": number, "Person": person, "Tense": tense}
    verb = Token(
        inflect(spec, lex.verbs[clause.verb], "VERB", feats), lex.verb_lemmas[clause.verb], "VERB", feats
    )

    parts: dict[str, list[Token]] = {"V": [verb], "O": [], "X": []}
    parts["S"], head = _render_nominal(subject, "A" if clause.object else "S", lex)
    _attach(head, verb, "nsubj")
    objects = []
    for nominal, role, deprel in ((clause.object, "O", "obj"), (clause.indirect, "IO", "iobj")):
        if nominal is not None:
            tokens, head = _render_nominal(nominal, role, lex)
            _attach(head, verb, deprel)
            objects.append(tokens)
    verb_final = spec.order.endswith("V")
    for tokens in reversed(objects) if verb_final else objects:
        parts["O"] += tokens
    for phrase in clause.obliques:
        tokens, head = _render_phrase(phrase, lex)
        _attach(head, verb, "obl")
        parts["X"] += tokens
    # Obliques go before the object in a verb-final language, after everything otherwise.
    order = spec.order.replace("O", "XO") if verb_final else spec.order + "X"
    return [token for slot in order for token in parts[slot]], verb


def render(sentence: SyntheticSentence, lex: Lexicon) -> list[Token]:
    """The sentence's tokens in one language; heads are Token objects (None for the root)."""
    tokens, root = _render_clause(sentence.clauses[0], lex)
    if len(sentence.clauses) > 1:
        second, verb = _render_clause(sentence.clauses[1], lex)
        comma = Token(lex.punctuation[","], lex.punctuation[","], "PUNCT", {}, "punct", verb)
        word, upos = lex.linkers[sentence.linker], LINKERS[sentence.linker][1]
        linker = Token(word, word, upos, {}, "cc" if upos == "CCONJ" else "mark", verb)
        _attach(verb, root, "conj" if upos == "CCONJ" else "advcl")
        tokens = tokens + [comma, linker] + second
    mark = lex.punctuation["?" if sentence.question else "."]
    return tokens + [Token(mark, mark, "PUNCT", {}, "punct", root)]


def sample_rendered(rng: random.Random, lexicons: Sequence[Lexicon]) -> tuple[SyntheticSentence, list[list[Token]]]:
    """A sentence whose rendering has MIN_WORDS..MAX_WORDS tokens in every given language."""
    while True:
        sentence = sample_sentence(rng)
        renderings = [render(sentence, lex) for lex in lexicons]
        if all(MIN_WORDS <= len(tokens) <= MAX_WORDS for tokens in renderings):
            return sentence, renderings


def parallel_corpus(
    lexicons: dict[str, Lexicon], languages: Sequence[str], n: int, seed: int
) -> list[tuple[SyntheticSentence, list[list[Token]]]]:
    """`n` abstract sentences, each rendered in every language of `languages` (in that order)."""
    rng = random.Random(f"{seed}:parallel")
    chosen = [lexicons[code] for code in languages]
    return [sample_rendered(rng, chosen) for _ in tqdm(range(n), desc="parallel text", mininterval=2)]


# Each content word of a code-switched sentence is the other language's with this probability.
P_SWITCH_WORD = 0.5


def code_switched(rng: random.Random, base: Lexicon, donor: Lexicon) -> list[str]:
    """One sentence in `base`'s word order and function words, whose content words are each, with
    probability P_SWITCH_WORD, `donor`'s word for the same concept inflected by `donor`'s grammar for
    the same role and features (as bilinguals mix languages inside a clause).

    A base-language adjective or verb then agrees with a donor-language noun, which rewards a model
    for encoding an attribute alike in both languages: the demo's route to cross-lingual alignment.
    """
    _, (tokens, donor_tokens) = sample_rendered(rng, [base, donor])
    donor_forms: dict[tuple[str, int], list[str]] = {}
    for token in donor_tokens:
        if (key := donor.concept(token)) is not None:
            donor_forms.setdefault(key, []).append(token.form)
    forms = []
    for token in tokens:
        key = base.concept(token)
        if donor_forms.get(key) and rng.random() < P_SWITCH_WORD:
            forms.append(donor_forms[key].pop(0))
        else:
            forms.append(token.form)
    return forms


# ----------------------------------------------------------------------------- files
def _feats(feats: dict[str, str]) -> str:
    if not feats:
        return "_"
    return "|".join(f"{name}={value}" for name, value in sorted(feats.items(), key=lambda kv: kv[0].lower()))


def to_conllu(tokens: list[Token], sent_id: str) -> str:
    """One sentence block (ending in a blank line); words are joined by spaces."""
    index = {id(token): i for i, token in enumerate(tokens, start=1)}
    lines = [f"# sent_id = {sent_id}", f"# text = {' '.join(t.form for t in tokens)}"]
    for i, t in enumerate(tokens, start=1):
        head = 0 if t.head is None else index[id(t.head)]
        lines.append(
            "\t".join([str(i), t.form, t.lemma, t.upos, "_", _feats(t.feats), str(head), t.deprel, "_", "_"])
        )
    return "\n".join(lines) + "\n\n"


def split_sizes(n: int) -> dict[str, int]:
    """80/10/10 in sentence order (sentences are drawn independently, so order is random)."""
    train, dev = round(n * SPLITS["train"]), round(n * SPLITS["dev"])
    return {"train": train, "dev": dev, "test": n - train - dev}


def generate_from_config(demo: Mapping[str, Any], ud_root: str | Path, seed: int) -> dict:
    """`generate_demo_data` from a config's `demo:` section; its defaults are the function's."""
    sizes = ("treebank_sentences", "pretrain_sentences", "parallel_sentences", "shared_vocabulary",
             "code_switching", "code_switching_languages")
    return generate_demo_data(
        ud_root=ud_root, demo_dir=demo["dir"], languages=demo["languages"], seed=seed,
        **{key: demo[key] for key in sizes if key in demo},
    )


def demo_treebank_folder(code: str) -> str:
    """The UD-style folder of a synthetic language's treebank, e.g. `UD_Synth-Xa`."""
    return f"UD_Synth-{code.capitalize()}"


def demo_treebank_file(ud_root: str | Path, code: str, split: str) -> Path:
    return Path(ud_root, demo_treebank_folder(code), f"{code}-ud-{split}.conllu")


def demo_data_paths(ud_root: str | Path, demo_dir: str | Path, languages: Sequence[str]) -> list[Path]:
    """Every file `generate_demo_data` writes (the docs/files.md contract)."""
    paths = [demo_treebank_file(ud_root, code, split) for code in languages for split in SPLITS]
    for kind in ("text", "parallel"):
        paths += [Path(demo_dir, kind, f"{code}.txt") for code in languages]
    return paths + [Path(demo_dir, "demo_data.json")]


def _check_settings(
    languages, treebank_sentences, pretrain_sentences, parallel_sentences, code_switching, switching
) -> None:
    unknown = [code for code in languages if code not in LANGUAGES]
    if unknown:
        raise ValueError(
            f"demo.languages: unknown synthetic language(s) {unknown} (known: {', '.join(LANGUAGES)})"
        )
    if not 0 <= code_switching <= 1:
        raise ValueError(f"demo.code_switching: a share between 0 and 1, got {code_switching}")
    if code_switching and (len(set(switching)) < 2 or not set(switching) <= set(languages)):
        raise ValueError(
            f"demo.code_switching_languages: need two or more of demo.languages {languages}, got {switching}"
        )
    if treebank_sentences < 10:
        raise ValueError(
            f"demo.treebank_sentences: need at least 10 for an 80/10/10 split, got {treebank_sentences}"
        )
    for key, value in (
        ("pretrain_sentences", pretrain_sentences),
        ("parallel_sentences", parallel_sentences),
    ):
        if value < 1:
            raise ValueError(f"demo.{key}: must be positive, got {value}")


def generate_demo_data(
    ud_root: str | Path,
    demo_dir: str | Path,
    languages: Sequence[str],
    treebank_sentences: int = 1500,
    pretrain_sentences: int = 12000,
    parallel_sentences: int = 300,
    shared_vocabulary: float = 0.5,
    code_switching: float = 0.0,
    code_switching_languages: Sequence[str] | None = None,
    seed: int = 0,
) -> dict:
    """Write the demo's treebanks, pre-training text, parallel text and a summary; return the summary.

    Every language gets its treebank, whether or not the config probes it, so that probing one more
    language later changes none of the data (nor the models trained on it).
    Treebanks, pre-training text and parallel text come from separate random streams.
    """
    languages = list(languages)
    switching = list(languages if code_switching_languages is None else code_switching_languages)
    _check_settings(
        languages, treebank_sentences, pretrain_sentences, parallel_sentences, code_switching, switching
    )
    lexicons = build_lexicons(shared_vocabulary, seed)
    summary: dict = {"languages": {}, "treebanks": {}}

    for code in languages:
        lex = lexicons[code]
        rng = random.Random(f"{seed}:treebank:{code}")
        blocks, n_tokens, lemmas = [], 0, set()
        for i in tqdm(range(treebank_sentences), desc=f"treebank {code}", mininterval=2):
            tokens = sample_rendered(rng, [lex])[1][0]
            n_tokens += len(tokens)
            lemmas.update((t.upos, t.lemma) for t in tokens)
            blocks.append(to_conllu(tokens, f"{code}-{i + 1:05d}"))
        start, counts = 0, {}
        for split, size in split_sizes(treebank_sentences).items():
            write_text(demo_treebank_file(ud_root, code, split), "".join(blocks[start : start + size]))
            start, counts[split] = start + size, size
        lemmas_per_upos = {
            upos: sum(1 for u, _ in lemmas if u == upos) for upos in sorted({u for u, _ in lemmas})
        }
        summary["treebanks"][code] = {
            "language": lex.spec.code,
            "sentences": counts,
            "tokens": n_tokens,
            "lemmas": lemmas_per_upos,
        }

    for code in languages:
        lex, rng = lexicons[code], random.Random(f"{seed}:pretrain:{code}")
        lines = [
            " ".join(t.form for t in sample_rendered(rng, [lex])[1][0])
            for _ in tqdm(range(pretrain_sentences), desc=f"pretrain text {code}", mininterval=2)
        ]
        # Code-switched sentences come on top, from their own stream: the monolingual text stays as it is.
        switched = []
        if code_switching and code in switching:
            rng, donors = random.Random(f"{seed}:code-switching:{code}"), [c for c in switching if c != code]
            switched = [
                " ".join(code_switched(rng, lex, lexicons[rng.choice(donors)]))
                for _ in range(round(code_switching * pretrain_sentences))
            ]
        write_text(Path(demo_dir, "text", f"{code}.txt"), "\n".join(lines + switched) + "\n")
        summary["languages"][code] = {
            **describe(lex.spec),
            "pretrain_sentences": len(lines) + len(switched),
            "pretrain_code_switched": len(switched),
            "pretrain_words": sum(len(line.split()) for line in lines + switched),
        }

    rendered = [
        renderings for _, renderings in parallel_corpus(lexicons, languages, parallel_sentences, seed)
    ]
    for j, code in enumerate(languages):
        text = "".join(" ".join(t.form for t in renderings[j]) + "\n" for renderings in rendered)
        write_text(Path(demo_dir, "parallel", f"{code}.txt"), text)
        summary["languages"][code]["parallel_sentences"] = parallel_sentences

    settings = {
        "languages": languages,
        "treebank_sentences": treebank_sentences,
        "pretrain_sentences": pretrain_sentences,
        "parallel_sentences": parallel_sentences,
        "shared_vocabulary": shared_vocabulary,
        "code_switching": code_switching,
        "code_switching_languages": switching,
        "seed": seed,
    }
    summary["settings"] = settings
    summary["shared_anchors"] = lexicons[languages[0]].shared_anchors
    summary["anchors"] = len(_anchor_keys())
    summary["provenance"] = provenance(settings, stage="generate_demo_data")
    write_json(Path(demo_dir, "demo_data.json"), summary)
    log.info(
        "wrote demo data for %s: %d shared anchors of %d",
        ", ".join(languages),
        len(summary["shared_anchors"]),
        summary["anchors"],
    )
    return summary


def describe(spec: LanguageSpec) -> dict:
    """The typological settings of a language, for the summary."""
    return {
        "name": spec.name,
        "affixation": spec.affixation,
        "order": spec.order,
        "adjective": "before noun" if spec.adjective_before_noun else "after noun",
        "adpositions": "prepositions" if spec.adpositions == "pre" else "postpositions",
        "gender": spec.gender,
        "case": spec.case,
        "tenses": list(spec.tenses),
        "articles": spec.articles,
    }

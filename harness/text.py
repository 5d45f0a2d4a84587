"""Plain-text helpers shared by tasks, labelers and metrics: sentences, words, leads.

Sentences are split by a regular expression rather than NLTK's punkt, whose data cannot be
downloaded here. Tasks, the summary gold and the logged metrics all use these, so they agree
on what a sentence and a copied lead are.
"""

from __future__ import annotations

import re

from harness.errors import InputError

# Tokens ending in "." that do not end a sentence. Single capital letters (initials such as
# "J. K. Rowling") are handled separately.
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "cf",
    "approx", "fig", "inc", "ltd", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "a.m", "p.m", "gov", "sen", "lt",
    "sgt", "capt",
})

# A run of terminal punctuation, any closing quotes or brackets, then whitespace. Decimals
# ("3.5") never match because no whitespace follows the point.
_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*\s+")
_PARAGRAPH = re.compile(r"\n\s*\n")
_WORD_BEFORE = re.compile(r"([\w.]+)$")
# Numbers keep their decimal point and thousands separators ("3.5", "1,200"); words are
# letter runs, so "don't" → "don", "t" and "27M" → "27", "m".
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: split after . ! ? (and closing quotes) followed by whitespace.

    Blank lines always end a sentence. A full stop after a known abbreviation ("Mr.", "e.g.")
    or a single capital letter (an initial) does not.
    """
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        start = 0
        for match in _BOUNDARY.finditer(paragraph):
            stop = match.end()
            if match.group().strip().rstrip("\"'”’)]") == ".":
                before = _WORD_BEFORE.search(paragraph[start : match.start()])
                token = before.group(1) if before else ""
                if token.lower() in ABBREVIATIONS or (len(token) == 1 and token.isupper()):
                    continue
            sentence = paragraph[start:stop].strip()
            if sentence:
                sentences.append(sentence)
            start = stop
        tail = paragraph[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def lead_k(text: str, k: int = 3) -> str:
    """The first k sentences of `text`: the lead-k baseline summary."""
    if k < 1:
        raise InputError(f"lead_k: k must be ≥ 1, got {k}")
    return " ".join(split_sentences(text)[:k])


def words(text: str) -> list[str]:
    """Lower-case word and number tokens; thousands separators dropped ("1,200" → "1200")."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok[0].isdigit():
            tok = tok.replace(",", "")
        out.append(tok)
    return out


def normalise(text: str) -> str:
    """Lower case with runs of whitespace collapsed to one space."""
    return " ".join(text.lower().split())


def starts_with_first_sentence(summary: str, first_sentence: str, max_words: int = 8) -> bool:
    """Whether the summary opens with the source's first sentence (a copied lead).

    Compares word tokens (case and punctuation ignored): true when the summary's first
    min(len(first_sentence), max_words) words equal the first sentence's, so a copied lead
    that was cut short still counts. An empty first sentence never matches.
    """
    lead = words(first_sentence)[:max_words]
    return bool(lead) and words(summary)[: len(lead)] == lead


# Function words and the fillers of informal writing: they show nothing about content.
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at back be because been
before being below between both but by can could did do does doing don done down during each
even ever every few for from further get gets getting got had has have having he her here
hers herself him himself his how i if in into is it its itself just know like ll m many
may me might more most much must my myself no nor not now of off ok okay on once only or
other our ours ourselves out over own re really s said same say says she should so some
still such t than that the their theirs them themselves then there these they this those
through to too under until up us ve very was we well were what when where which while who
whom why will with would yeah yes yet you your yours yourself yourselves basically actually
anyway anyways hi hello hey thanks thank please sorry tl dr tldr edit update
""".split())

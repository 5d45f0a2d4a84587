"""Text metrics for summaries against hand-checkable strings."""

import pytest

from harness.errors import InputError
from harness.eval.text_metrics import copy_fraction, first_sentence_rate, mean_copy_fraction, rouge
from harness.text import lead_k, split_sentences, starts_with_first_sentence, words


def test_rouge_identical_and_disjoint() -> None:
    same = rouge(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert same == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "rouge_avg": 1.0})
    apart = rouge(["dogs bark loudly"], ["the cat sat"])
    assert apart == pytest.approx({"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "rouge_avg": 0.0})


def test_rouge_hand_worked() -> None:
    # pred: the cat sat on the mat / ref: the cat lay on a mat (6 tokens each).
    # Unigrams: the (clipped to 1), cat, on, mat match → P = R = 4/6, F = 2/3.
    # Bigrams: only "the cat" of 5 each → F = 1/5. LCS "the cat on mat" = 4 → F = 2/3.
    got = rouge(["the cat sat on the mat"], ["the cat lay on a mat"])
    assert got["rouge1"] == pytest.approx(2 / 3)
    assert got["rouge2"] == pytest.approx(1 / 5)
    assert got["rougeL"] == pytest.approx(2 / 3)
    assert got["rouge_avg"] == pytest.approx((2 / 3 + 1 / 5 + 2 / 3) / 3)


def test_rouge_stems_and_averages_over_pairs() -> None:
    # Porter stemming: "cats running" ≡ "cat run"; mean of 1 and 0 over two pairs.
    assert rouge(["Cats running!"], ["cat run"])["rouge1"] == pytest.approx(1.0)
    assert rouge(["cat run", "xyz"], ["cat run", "abc"])["rouge1"] == pytest.approx(0.5)


def test_rouge_bad_input() -> None:
    with pytest.raises(InputError, match="pair up"):
        rouge(["a"], ["a", "b"])
    with pytest.raises(InputError, match="at least one"):
        rouge([], [])


def test_split_sentences_edge_cases() -> None:
    text = "Mr. Smith paid $3.5 million. Was it worth it? Yes! He said so"
    assert split_sentences(text) == ["Mr. Smith paid $3.5 million.", "Was it worth it?", "Yes!", "He said so"]
    assert split_sentences("Dr. J. K. Rowling met Mrs. Jones, e.g. at 9 a.m. today.") == [
        "Dr. J. K. Rowling met Mrs. Jones, e.g. at 9 a.m. today."
    ]
    assert split_sentences('He said "stop." Then he left?! Fine...') == ['He said "stop."', "Then he left?!", "Fine..."]
    assert split_sentences("no caps here. still split.\n\nNew paragraph") == [
        "no caps here.", "still split.", "New paragraph",
    ]
    assert split_sentences("It costs 3.5. Or 4.25.") == ["It costs 3.5.", "Or 4.25."]
    assert split_sentences("") == [] and split_sentences("  \n ") == []


def test_lead_k() -> None:
    assert lead_k("A b. C d! E f? G h.") == "A b. C d! E f?"
    assert lead_k("One. Two.", k=5) == "One. Two."
    assert lead_k("One. Two.", k=1) == "One."
    with pytest.raises(InputError, match="k must be"):
        lead_k("One.", k=0)


def test_words_normalises_numbers() -> None:
    assert words("Paid $1,200 (27M), don't 3.5.") == ["paid", "1200", "27", "m", "don", "t", "3.5"]


def test_copy_fraction() -> None:
    source = "The council met on Tuesday.  It approved   the budget. Critics objected."
    # Second sentence copied (case and whitespace differ), first is new: 1 of 2.
    assert copy_fraction("A new library is coming. it approved the budget.", source) == 0.5
    assert copy_fraction("The council met on Tuesday. Critics objected.", source) == 1.0
    assert copy_fraction("Nothing like the source.", source) == 0.0
    assert copy_fraction("", source) == 0.0
    assert mean_copy_fraction(["Critics objected.", ""], [source, source]) == 0.5


def test_starts_with_first_sentence() -> None:
    first = "Hi everyone, long time lurker, first time poster."
    assert starts_with_first_sentence("Hi everyone, long time lurker, first time poster. My bf...", first)
    assert starts_with_first_sentence("hi   EVERYONE long time lurker first time poster", first)
    # A copied lead cut short still counts: only its first 8 words are compared.
    long_first = "So my landlord called me at six in the morning to say the rent is going up."
    assert starts_with_first_sentence("So my landlord called me at six in the... rent up", long_first)
    assert not starts_with_first_sentence("So my landlord called me at seven in the morning", long_first)
    assert not starts_with_first_sentence("Boyfriend took a job without asking me.", first)
    assert not starts_with_first_sentence("Hi everyone", first)  # shorter than the lead compared
    assert not starts_with_first_sentence("Hi everyone.", "")
    assert first_sentence_rate([first, "Other."], [first, first]) == 0.5
    with pytest.raises(InputError, match="equal length"):
        first_sentence_rate([first], [])

"""General fail-closed rules found on fresh prompt batches (issue 12): a nationality on an unknown
noun, tag soup with no person word, hair-colour person nouns and gender-correlated words when no
gender word is swapped.  Each rule is checked on words it was not written for."""

import pytest

from obclip_nodes.privacy import ExpansionError, expand_prompt


def refused_words(prompt: str) -> dict:
    with pytest.raises(ExpansionError) as ei:
        expand_prompt(prompt)
    return {f.word: f.type for f in ei.value.findings}


@pytest.mark.parametrize("prompt,phrase", [
    ("a Mexican abuela cooking tamales", "Mexican abuela"),
    ("an Italian nonno in his garden", "Italian nonno"),
    ("a Japanese geiko walking in Gion", "Japanese geiko"),
    ("Korean oppa, stage lights", "Korean oppa"),
])
def test_nationality_on_an_unknown_noun_fails_closed(prompt, phrase):
    found = refused_words(prompt)
    assert found.get(phrase) == "ethnicity", found


@pytest.mark.parametrize("prompt", [
    "a Chinese lantern glowing", "Thai green curry with rice", "an Italian villa on a hill",
    "a Japanese maple in autumn", "Moroccan tiles in a courtyard", "a Siamese cat asleep",
    "Italian cooking class poster", "Spanish architecture at dusk", "a Dutch windmill by a canal",
])
def test_nationality_on_a_thing_stays_clean(prompt):
    e = expand_prompt(prompt)
    assert e.n == 1 and not e.unprotected and e.candidates == (prompt,)


def test_a_school_uniform_names_a_childs_age_and_is_refused():
    with pytest.raises(ExpansionError, match="'school uniform' \\(age\\)"):
        expand_prompt("1girl, solo, school uniform, classroom")


@pytest.mark.parametrize("prompt,attr,n", [
    ("asian, long hair, smile", "ethnicity", 5),
    ("nigerian, braids, portrait", "ethnicity", 5),
    ("elderly, wrinkles, portrait, bokeh", "age", 3),
    ("middle-aged, office, tired", "age", 3),
    ("old, stone, bridge", "age", 3),             # fail closed: a lone age tag is taken as a person
])
def test_tag_soup_without_a_person_word_has_an_implied_person(prompt, attr, n):
    e = expand_prompt(prompt)
    assert e.attributes == (attr,) and e.n == n
    assert prompt in e.candidates or e.normalisations


@pytest.mark.parametrize("prompt", ["white, minimal, clean", "black, gold, art deco", "brown, beige, earth tones"])
def test_colour_tags_without_person_evidence_stay_clean(prompt):
    e = expand_prompt(prompt)
    assert e.n == 1 and e.candidates == (prompt,)


@pytest.mark.parametrize("prompt,word", [
    ("a stunning redhead in a green dress", "dress"),
    ("a doctor with a thick beard", "beard"),
    ("a brunette sipping coffee", "brunette"),
    ("portrait of a blonde with freckles", "blonde"),
])
def test_gender_correlated_word_without_a_swapped_gender_fails_closed(prompt, word):
    assert refused_words(prompt).get(word) == "gender"


@pytest.mark.parametrize("prompt,n", [("a redhead reading in a cafe", 1), ("a blonde woman on a beach", 2),
                                      ("a woman in a green dress", 2), ("a red dress on a hanger", 1),
                                      ("blonde hair, blue eyes, portrait", 1)])
def test_correlated_words_with_a_swapped_gender_or_no_person_are_not_refused(prompt, n):
    assert expand_prompt(prompt).n == n

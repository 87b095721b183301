"""The language and spelling gate (privacy/readable.py): what the expander cannot read is refused or read
as the word it misspells, and ordinary English prompt vocabulary passes untouched."""

import pytest

from obclip_nodes.privacy import ExpansionError, expand_prompt, verify_closure


@pytest.mark.parametrize("prompt, language", [
    ("una niña pequeña jugando en el parque", "Spanish"),
    ("ein alter Mann liest die Zeitung", "German"),
    ("une vieille dame au marché, photo", "French"),
    ("una donna anziana che cucina", "Italian"),
    ("uma menina brincando na praia", "Portuguese"),
])
def test_a_prompt_in_another_language_is_refused_naming_the_language(prompt, language):
    with pytest.raises(ExpansionError) as err:
        expand_prompt(prompt)
    msg = str(err.value)
    assert f"the prompt looks like {language}" in msg and "write the prompt in English" in msg, msg


@pytest.mark.parametrize("prompt, script", [("一位老奶奶在做饭", "Chinese"), ("пожилой мужчина в парке", "Cyrillic"),
                                            ("portrait of 少女, soft light", "Chinese")])
def test_a_non_latin_script_is_refused(prompt, script):
    with pytest.raises(ExpansionError, match=script):
        expand_prompt(prompt)


def test_one_foreign_person_word_in_an_english_prompt_is_refused():
    with pytest.raises(ExpansionError, match="'abuelita'.*looks like Spanish"):
        expand_prompt("my abuelita knitting a scarf by the window")


@pytest.mark.parametrize("prompt", [
    "a bowl of ramen with a soft egg, food photography",
    "a man in a sombrero playing guitar",
    "art by alphonse mucha, art nouveau poster of a woman",
    "a paella pan on an open fire, rustic",
    "ukiyo-e print of a wave, hokusai style",
])
def test_loanwords_and_artist_names_pass(prompt):
    e = expand_prompt(prompt)
    assert not [f for f in e.unprotected if f.type == "language"]


@pytest.mark.parametrize("prompt, written, read_as, attribute", [
    ("a yuong woman reading in a cafe", "yuong", "young", "age"),
    ("portrait of an elderley asian man", "elderley", "elderly", "age"),
    ("a hispannic man fixing a car", "hispannic", "hispanic", "ethnicity"),
    ("a womn walking her dog", "womn", "woman", "gender"),
])
def test_a_misspelling_is_read_as_its_word_and_swapped(prompt, written, read_as, attribute):
    e = verify_closure(prompt)
    assert f"'{written}' -> '{read_as}' (spelling)" in e.normalisations, e.normalisations
    assert attribute in e.attributes and e.n > 1
    assert read_as in e.real_prompt and written not in e.real_prompt


def test_a_bare_possessive_s_is_read_as_the_possessive():
    e = verify_closure("close-up of a mans hands on a steering wheel")
    assert e.real_prompt == "close-up of a man's hands on a steering wheel" and "gender" in e.attributes


def test_an_ambiguous_misspelling_is_refused_with_did_you_mean():
    # 'dady' is one edit from 'lady' (female), 'dads' and 'daddy' (male): no reading is safer than another
    with pytest.raises(ExpansionError, match="did you mean 'daddy' or 'lady' or 'dads'|did you mean") as err:
        expand_prompt("a portrait of a dady in the park")
    assert "'lady'" in str(err.value) and "'daddy'" in str(err.value)


def test_the_negative_prompt_goes_through_the_same_gate():
    from obclip_nodes.privacy import check_negative
    with pytest.raises(ExpansionError, match="looks like"):
        check_negative("hombre viejo, barba")
    assert check_negative("blurry, lowres, jpeg artifacts") == ()


def test_the_override_sends_an_unreadable_prompt_and_lists_it():
    e = expand_prompt("una mujer joven en la calle", allow_unprotected=True)
    assert e.outcome == "allowed" and any("mujer" in f.word and f.type == "language" for f in e.unprotected)
    assert "ALLOWED UNPROTECTED" in e.server_learns

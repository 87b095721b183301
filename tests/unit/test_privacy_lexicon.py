"""Lexicons: the shipped presets, the paper's value spaces, user files and their errors."""

import json

import pytest

from obclip_nodes.privacy import PRESETS, ExpansionError, Lexicon, expand_prompt, load_lexicon, parse_lexicon
from obclip_nodes.privacy.lexicon import _DIR


def test_presets():
    assert PRESETS == ("default", "paper")
    for name in PRESETS:
        lex = load_lexicon(name)
        assert isinstance(lex, Lexicon) and lex.name == name
        assert (_DIR / f"{name}.json").is_file()
    assert load_lexicon(None) is load_lexicon("default")


def test_paper_value_spaces_exactly():
    lex = load_lexicon("paper")
    assert lex.attributes == {
        "gender": ("male", "female"),
        "age": ("young", "middle-aged", "old"),
        "ethnicity": ("caucasian", "african", "asian", "indian", "european"),
    }


def test_paper_three_attributes_give_30():
    e = expand_prompt("headshots portrait with a young asian woman covered in religious tattoos.", lexicon="paper")
    assert e.n == 30 and e.attributes == ("age", "ethnicity", "gender")
    assert "headshots portrait with an old european man covered in religious tattoos." in e.candidates
    assert expand_prompt("Smiling man sitting on flower field", lexicon="paper").n == 2
    assert expand_prompt("a young man", lexicon="paper").n == 6


def test_default_value_spaces():
    lex = load_lexicon("default")
    assert lex.attributes["gender"] == ("female", "male")
    assert lex.attributes["age"] == ("child", "young", "middle-aged", "old")
    assert lex.attributes["skin_tone"] == ("fair", "light", "olive", "tan", "dark")
    assert load_lexicon("paper").attributes["age"] == ("young", "middle-aged", "old")      # the paper's N = 30
    assert len(lex.attributes["ethnicity"]) == 5


def _write(tmp_path, data, name="lex.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


MINI = {"schema": 1, "name": "mini", "attributes": {
    "hair": {"values": ["blond", "dark"], "paradigms": [{"role": "adjective", "forms": {"blond": "blond", "dark": "dark-haired"}}]},
    "gender": {"values": ["f", "m"], "paradigms": [{"role": "noun", "forms": {"f": "woman", "m": "man"}},
                                                   {"role": "pronoun", "case": "subject", "forms": {"f": "she", "m": "he"}}]}}}


def test_user_lexicon_file(tmp_path):
    p = _write(tmp_path, MINI)
    e = expand_prompt("a blond woman, she smiles", lexicon=p)
    assert e.candidates == ("a blond woman, she smiles", "a blond man, he smiles",
                            "a dark-haired woman, she smiles", "a dark-haired man, he smiles")
    assert e.real_index == 0 and e.attributes == ("gender", "hair")
    assert expand_prompt("a blond woman", lexicon=str(p), attributes=["hair"]).n == 2
    with pytest.raises(ExpansionError, match="known attributes: hair, gender"):
        expand_prompt("a blond woman", lexicon=p, attributes=["age"])
    lex = load_lexicon(p)
    assert expand_prompt("a dark-haired man", lexicon=lex).real_index == 3


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("schema"), '"schema" must be 1'),
    (lambda d: d.__setitem__("attributes", {}), '"attributes" must be a non-empty object'),
    (lambda d: d["attributes"]["hair"].__setitem__("values", ["blond"]), "at least 2 distinct"),
    (lambda d: d["attributes"]["hair"]["paradigms"][0]["forms"].pop("dark"), "at least two values"),
    (lambda d: d["attributes"]["hair"]["paradigms"][0]["forms"].__setitem__("red", "ginger"), "at least two values"),
    (lambda d: d["attributes"]["hair"]["paradigms"][0].__setitem__("role", "verb"), '"role" must be one of'),
    (lambda d: d["attributes"]["gender"]["paradigms"][1].pop("case"), 'a pronoun needs "case"'),
    (lambda d: d["attributes"]["hair"]["paradigms"][0]["forms"].__setitem__("dark", "woman"), "already belongs"),
    (lambda d: d["attributes"]["hair"]["paradigms"][0]["forms"].__setitem__("dark", "dark  haired"), "letters with single"),
    (lambda d: d.__setitem__("person_nouns", ["man"]), "also an attribute surface"),
    (lambda d: d.__setitem__("leak_words", [{"word": "beard"}]), "leak_words #0"),
])
def test_bad_lexicon_messages(tmp_path, mutate, message):
    data = json.loads(json.dumps(MINI))
    mutate(data)
    p = _write(tmp_path, data)
    with pytest.raises(ExpansionError, match=message) as ei:
        expand_prompt("a woman", lexicon=p)
    assert str(p) in str(ei.value) and "schema" in str(ei.value)


def test_bad_lexicon_json_and_missing(tmp_path):
    p = _write(tmp_path, "{not json")
    with pytest.raises(ExpansionError, match="not valid JSON .* line 1"):
        expand_prompt("a woman", lexicon=p)
    with pytest.raises(ExpansionError, match="neither a preset .default, paper. nor an existing JSON file"):
        expand_prompt("a woman", lexicon=str(tmp_path / "missing.json"))
    with pytest.raises(ExpansionError, match="must be None, a preset name"):
        expand_prompt("a woman", lexicon=42)


def test_shipped_lexicons_are_valid_json_schema_1():
    for name in PRESETS:
        data = json.loads((_DIR / f"{name}.json").read_text())
        assert data["schema"] == 1 and data["name"] == name
        parse_lexicon(data, name)


def test_capitalisation_styles_are_unambiguous():
    """A style is offered only if it reads back as itself for every value."""
    lex = load_lexicon("default")
    eth = next(p for p in lex.paradigms if p.attribute == "ethnicity")
    assert eth.styles == ("natural", "lower", "upper")       # title == natural for "Asian"
    noun = next(p for p in lex.paradigms if p.forms.get("female") == "woman")
    assert noun.styles == ("natural", "title", "upper")      # lower == natural


def test_shared_demonyms_belong_to_the_most_populous_living_country():
    """A demonym that several country records share resolves to the most populous of them (never a
    withdrawn country such as Serbia and Montenegro); checked over the whole generated table."""
    from obclip_nodes.privacy.lexicon import _DATA

    table = json.loads((_DATA / "demonyms.json").read_text(encoding="utf-8"))["demonyms"]
    shared = {w: row for w, row in table.items() if row.get("also")}
    assert {"Indian", "Chinese", "Congolese", "French", "American", "Serbian"} <= set(shared)
    for word, row in shared.items():
        assert row["country"] != "Serbia and Montenegro", word
        if row["country"] not in ("Serbia", "Montenegro"):
            assert all(row["population"] >= pop for pop in row["also"].values()), (word, row)
    assert table["Indian"]["country"] == "India"
    assert table["Congolese"]["country"] == "Democratic Republic of the Congo"
    assert table["Dominican"]["country"] == "Dominican Republic"
    assert table["American"]["country"] == "United States"


@pytest.mark.parametrize("word,value", [("Indian", "asian"), ("Chinese", "asian"), ("Congolese", "black"),
                                        ("Dominican", "hispanic"), ("Guinean", "black"), ("French", "white"),
                                        ("Serbian", "white"), ("Montenegrin", "white"), ("Norwegian", "white")])
def test_colliding_demonyms_snap_to_the_main_country(word, value):
    e = expand_prompt(f"a {word} woman reading")
    assert "ethnicity" in e.attributes
    assert any(f"(ethnicity: {value})" in n for n in e.normalisations), e.normalisations


def test_demonym_without_a_value_fails_closed():
    with pytest.raises(ExpansionError, match="Samoan"):
        expand_prompt("a Samoan woman reading")

"""Public API of obclip_nodes.privacy: fields, public view, guards, leak warnings, server_learns."""

import json

import pytest

from obclip_nodes.privacy import Expansion, ExpansionError, expand_prompt


def test_fields_and_public_view():
    e = expand_prompt("an old man with his dog")
    assert isinstance(e, Expansion)
    # "old man" is one cell of gender x age: every cell is written in its natural words, a child as girl/boy
    assert e.n == 8 == len(e.candidates)
    assert e.candidates == (
        "a girl with her dog", "a young woman with her dog", "a middle-aged woman with her dog",
        "an old woman with her dog", "a boy with his dog", "a young man with his dog", "a middle-aged man with his dog",
        "an old man with his dog")
    assert e.real_index == 7 and e.real_prompt == "an old man with his dog"
    assert e.attributes == ("age", "gender")
    assert e.slots == ({"person": 0, "attribute": "gender", "values": ("female", "male")},
                       {"person": 0, "attribute": "age", "values": ("child", "young", "middle-aged", "old")})
    view = e.public_view()
    assert view == {"candidates": list(e.candidates), "attributes": ["age", "gender"], "n": 8,
                    "slots": [{"person": 0, "attribute": "gender", "values": ["female", "male"]},
                              {"person": 0, "attribute": "age", "values": ["child", "young", "middle-aged", "old"]}]}
    assert json.loads(json.dumps(view)) == view
    assert "real_index" not in repr(e) and "7" not in json.dumps(view)


def test_public_view_identical_for_every_candidate():
    e = expand_prompt("A young Asian woman reading; she smiles at her cat.")
    assert e.n == 40 and e.attributes == ("age", "ethnicity", "gender")
    assert "An old White man reading; he smiles at his cat." in e.candidates
    assert "A little Black girl reading; she smiles at her cat." in e.candidates
    views = {json.dumps(expand_prompt(c).public_view(), sort_keys=True) for c in e.candidates}
    assert len(views) == 1


def test_nothing_sensitive():
    e = expand_prompt("a red apple on a table")
    assert e.n == 1 and e.candidates == ("a red apple on a table",) and e.real_index == 0
    assert e.attributes == () and e.slots == ()
    assert "nothing is protected" in e.server_learns


@pytest.mark.parametrize("bad, msg", [
    ("", "empty"), ("   \n", "empty"), (None, "must be text"), (b"a man", "must be text"), (3, "must be text")])
def test_bad_prompt(bad, msg):
    with pytest.raises(ExpansionError, match=msg):
        expand_prompt(bad)


def test_expansion_error_is_value_error():
    assert issubclass(ExpansionError, ValueError)


def test_unknown_attribute_names_known_ones():
    with pytest.raises(ExpansionError, match=r"unknown attribute\(s\) 'race'.*known attributes: gender, age, ethnicity"):
        expand_prompt("a man", ["race"])


def test_attributes_as_string_and_empty():
    assert expand_prompt("an old man", "gender").n == 2
    assert expand_prompt("an old man", "age, gender").n == 8
    assert expand_prompt("an old man", []).n == 1


def test_cap_message_names_attributes_to_drop():
    with pytest.raises(ExpansionError) as ei:
        expand_prompt("a young Asian woman", max_candidates=8, blocks=False)
    msg = str(ei.value)
    assert "40 candidates" in msg and "max_candidates=8" in msg
    assert "attributes=['age', 'gender'] (N=8, drops ethnicity)" in msg and "attributes=['ethnicity'] (N=5" in msg
    assert expand_prompt("a young Asian woman", max_candidates=40).n == 40
    assert expand_prompt("a young Asian doctor", max_candidates=15).n == 15     # no cell noun: three adult ages
    with pytest.raises(ExpansionError, match="at least 1600"):
        expand_prompt("a young Asian woman and an old Black man", blocks=False)
    # with anonymity blocks (the default) the early guard is the block limit, and names it
    with pytest.raises(ExpansionError, match="at least 1600 candidates .* more than the 500 combinations that "
                                             "anonymity blocks are cut from.*OBCLIP_BLOCK_MAX_COMBINATIONS"):
        expand_prompt("a young Asian woman and an old Black man", max_combinations=500)
    with pytest.raises(ExpansionError, match="positive integer"):
        expand_prompt("a man", max_candidates=0)


def test_n_growth_is_product_over_slots():
    assert expand_prompt("a woman").n == 2
    assert expand_prompt("a woman and a man").n == 4
    assert expand_prompt("a woman, a man and a boy").n == 2 * 2 * (2 * 4)      # the boy is a cell of gender x age
    assert expand_prompt("an old woman and a man").n == 16
    assert expand_prompt("an old doctor and a man").n == 3 * 2                 # a doctor keeps the three adult ages
    assert expand_prompt("an Asian woman").n == 10
    assert expand_prompt("a young Asian woman").n == 40


def test_leak_warnings():
    e = expand_prompt("a man with a beard and laugh lines around his eyes, wearing lipstick")
    w = " | ".join(e.leak_warnings)
    assert "'beard' correlates with gender" in w and "'lipstick' correlates with gender" in w
    assert "laugh lines" not in w           # age is not protected here: nothing to weaken
    e = expand_prompt("an old man with laugh lines")
    assert any("'laugh lines' correlates with age" in x for x in e.leak_warnings)
    # words that give an attribute away are no longer warnings: they are swapped (snapped) or refused
    with pytest.raises(ExpansionError, match=r"'Mrs' \(gender\)") as ei:
        expand_prompt("Mrs Smith, a Latina teenage girl")
    assert "Latina" not in str(ei.value) and "teenage" not in str(ei.value)   # those two are swapped
    e = expand_prompt("Mrs Smith, a Latina teenage girl", allow_unprotected=True)
    assert e.outcome == "allowed" and [f.word for f in e.unprotected] == ["Mrs", "Smith"]   # title + surname
    assert "'Latina' -> 'Hispanic' (ethnicity: hispanic)" in e.normalisations
    assert "'teenage girl' -> 'girl' (age: child)" in e.normalisations       # a teenager is in the child class
    assert expand_prompt("a girl").attributes == ("age", "gender")             # swapped as a cell, not warned
    e = expand_prompt("a woman holding a black cat")
    assert any("'black' (ethnicity) was left unchanged" in x for x in e.leak_warnings)
    assert expand_prompt("a black cat").leak_warnings == ()
    assert "leak warning" in expand_prompt("a man with a beard").server_learns


def test_article_normalisation_is_documented():
    e = expand_prompt("a old man")
    assert e.normalised and e.real_prompt == "an old man" and e.prompt == "a old man"
    assert not expand_prompt("an old man").normalised


def test_pronoun_ambiguity_uses_context():
    assert "I gave him his book" in expand_prompt("I gave her her book").candidates
    assert "the hat is his" in expand_prompt("the hat is hers").candidates
    assert "the hat is hers, not mine" in expand_prompt("the hat is his, not mine").candidates
    assert "she hugs him tightly" in expand_prompt("he hugs her tightly").candidates


def test_server_learns_mentions_what_leaks():
    e = expand_prompt("a young woman")
    s = e.server_learns
    assert "N=8" in s and "1/8" in s and "age: child, young, middle-aged, old" in s and "gender: female, male" in s
    assert "1 person" in s and "does not learn your values" in s
    e = expand_prompt("a woman and a man dancing, she holds his waist")
    assert e.n < e.combinations and "Only 2 of the 4 combinations" in e.server_learns


def test_leak_warnings_and_server_learns_do_not_depend_on_the_real_candidate():
    for p in ["a young girl with a beard", "a lady and her grandson", "an old woman holding a black cat"]:
        e = expand_prompt(p)
        assert len({(expand_prompt(c).leak_warnings, expand_prompt(c).server_learns) for c in e.candidates}) == 1


def test_privacy_package_is_stdlib_only():
    """At import time: only the standard library (the optional model flagger imports transformers when
    a flagger is built, inside a function)."""
    import ast
    import sys
    from pathlib import Path

    import obclip_nodes.privacy as pkg

    lazy = []
    for f in Path(pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(f.read_text())
        in_function = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(fn)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                if id(node) in in_function:
                    lazy.append((f.name, name))
                    continue
                assert name.split(".")[0] in sys.stdlib_module_names or name == "__future__", (f.name, name)
    assert ("flagger.py", "transformers") in lazy
    # the one third-party dependency of the core: the language and spelling gate (readable.py), loaded lazily
    assert {("readable.py", "wordfreq"), ("readable.py", "rapidfuzz.process")} <= set(lazy)
    assert all(name.split(".")[0] in sys.stdlib_module_names or (f, name.split(".")[0]) in {
        ("flagger.py", "transformers"), ("readable.py", "wordfreq"), ("readable.py", "rapidfuzz")}
        for f, name in lazy), lazy

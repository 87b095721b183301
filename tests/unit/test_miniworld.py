"""The synthetic world: every caption renders, and the reader recovers every attribute."""
from __future__ import annotations

import numpy as np

from obclip_nodes.miniworld import ATTRIBUTES, Portrait, caption, parse_caption, read, render
from obclip_nodes.privacy import expand_prompt


def test_reader_inverts_the_renderer_on_every_portrait_even_with_noise():
    rng = np.random.default_rng(0)
    portraits = Portrait.all()
    assert len(portraits) == 2 * 3 * 5 * 4 * 4 * 2 * 2
    for p in portraits:
        img = render(p)
        assert read(img) == p
        assert read(np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)) == p


def test_attributes_change_the_pixels_they_own():
    base = Portrait.all()[0]
    for name, values in ATTRIBUTES.items():
        images = [render(Portrait(**{**base.__dict__, name: v})) for v in values]
        for a, b in zip(images, images[1:]):
            assert np.abs(a - b).max() > 0.2, name


def test_captions_round_trip_and_the_expander_swaps_exactly_the_protected_attributes():
    p = Portrait("female", "young", "asian", "blue", "red", True, False)
    text = caption(p)
    assert parse_caption(text) == p
    exp = expand_prompt(text, lexicon="paper")
    assert exp.attributes == ("age", "ethnicity", "gender") and exp.n == 30
    seen = {parse_caption(c) for c in exp.candidates}  # every candidate is itself a valid caption
    assert len(seen) == 30 and p in seen
    assert {(q.background, q.shirt, q.glasses, q.hat) for q in seen} == {("blue", "red", True, False)}

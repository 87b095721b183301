"""README command 1 (`./run.sh demo`) as a test: two real ComfyUI servers, the mini-world workflow, and the
image read back by the mini world's exact attribute reader.

The prompts are held-out captions (never trained on) that differ only in protected attributes, so
the test shows the image follows the *real* prompt, while the cloud's recorded view stays the same.
"""
from __future__ import annotations

import pytest

from obclip_nodes.bench import demo
from obclip_nodes.miniworld import PROTECTED, Portrait, caption
from obclip_nodes.miniworld.train import split

pytestmark = pytest.mark.servers


def _two_held_out_variants() -> tuple[Portrait, Portrait]:
    """Two held-out portraits with the same public details and different protected attributes."""
    held = split()[1]
    for a in held:
        for b in held:
            if all(getattr(a, f) == getattr(b, f) for f in ("background", "shirt", "glasses", "hat")) and \
                    a.gender != b.gender and a.age != b.age:
                return a, b
    raise AssertionError("no pair of held-out captions differing only in protected attributes")


def test_demo_image_shows_the_real_prompt_and_the_cloud_view_does_not_depend_on_it(tmp_path, monkeypatch):
    from obclip_nodes.harness import servers
    monkeypatch.setattr(servers, "ONEDNN_CONVOLUTIONS", True)  # the servers exactly as `./run.sh demo` starts them
    variants = _two_held_out_variants()
    # both on one pair of servers (the demo's --prompt given twice): each report holds its own prompt's view
    out = demo.run(["--prompt", caption(variants[0]), "--prompt", caption(variants[1]), "--seed", "3",
                    "--out", str(tmp_path / "demo.png")])
    assert out["ok"] and len(out["runs"]) == 2
    reports = out["runs"]
    for i, (portrait, rep) in enumerate(zip(variants, reports), start=1):
        shows = rep["image_shows"]
        assert rep["real_prompt"] == caption(portrait)
        assert rep["cloud_model"] == "obclip-mini-cloud.safetensors"
        assert rep["n"] == 30 and rep["latent_rows_fetched"] == 30     # age x ethnicity x gender, all fetched
        assert caption(portrait) in rep["candidates"]
        assert {a: shows["matches_real_prompt"][a] for a in PROTECTED} == {a: True for a in PROTECTED}, shows
        assert (tmp_path / f"demo-{i}-x6.png").stat().st_size > 0
        assert rep["cloud_received"]["prompts"] == 1  # its own prompt's view only
    first, second = reports
    # the server saw the same thing whichever of the two was real
    assert first["candidates"] == second["candidates"]
    assert first["cloud_received"]["digest"] == second["cloud_received"]["digest"]
    assert first["cloud_received"]["node_types"] == ["CheckpointLoaderSimple", "ObCLIPServerReturn",
                                                      "ObCLIPServerSampler"]
    # ...while the images differ in the protected attributes, as the real prompts do
    assert first["image_shows"]["read"]["gender"] != second["image_shows"]["read"]["gender"]

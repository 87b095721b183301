"""The wire contract's binding pieces: the result key, the request digest, and the one graph shape a
client tenant may submit (plain logic; the real-server attacks are in tests/integration/test_cloud_tenants.py)."""
from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from obclip_nodes.protocol import CloudRequest, ProtocolError, build_server_prompt
from obclip_nodes.protocol.request import (RESULT_KEY_INPUT, new_result_key, parse_server_prompt, result_key_hash,
                                           sampler_requests)

REQ = CloudRequest(candidates=("a photo of a man", "a photo of a woman"), checkpoint="big.safetensors", seed=9,
                   width=64, height=64, steps=4, cloud_steps=2, acceleration={"batch_reuse": True})


def test_result_keys_are_fresh_random_and_only_their_hash_is_sent():
    (s1, h1), (s2, h2) = new_result_key(), new_result_key()
    assert s1 != s2 and h1 != h2 and len(s1) == 64 and result_key_hash(s1) == h1
    graph = build_server_prompt(REQ, h1)
    assert graph["3"]["inputs"][RESULT_KEY_INPUT] == h1 and s1 not in json.dumps(graph)
    with pytest.raises(ProtocolError, match="sha256 hex"):
        build_server_prompt(REQ, "not-a-hash")


def test_the_digest_covers_every_public_field_the_cloud_samples_with():
    base = REQ.digest()
    assert base == dataclasses.replace(REQ, checkpoint="other").digest()  # the sampler never sees the file name
    for change in ({"candidates": ("a photo of a woman", "a photo of a man")}, {"seed": 10}, {"negative": "x"},
                   {"steps": 5}, {"cloud_steps": 1}, {"cfg": 7.5}, {"sampler": "ddim"}, {"scheduler": "karras"},
                   {"width": 72}, {"height": 72}, {"acceleration": {}}):
        assert dataclasses.replace(REQ, **change).digest() != base, change
    assert dataclasses.replace(REQ, cfg=7.000000000000001).digest() == base  # ComfyUI's 0.01 rounding


def test_the_graph_a_client_may_submit_is_exactly_the_request_graph():
    _, key = new_result_key()
    graph = build_server_prompt(REQ, key)
    req, got_key = parse_server_prompt(graph)
    assert req == REQ and got_key == key and sampler_requests(graph) == [dataclasses.replace(REQ, checkpoint="(any)")]

    def broken(edit):
        g = copy.deepcopy(graph)
        edit(g)
        return g
    cases = [
        (lambda g: g.update({"4": {"class_type": "SaveImage", "inputs": {}}}), "only the ObCLIP request graph"),
        (lambda g: g["3"]["inputs"].pop(RESULT_KEY_INPUT), "must carry"),
        (lambda g: g["3"]["inputs"].update({RESULT_KEY_INPUT: "x"}), "sha256 hex digest"),
        (lambda g: g["2"]["inputs"].update({"model": ["3", 0]}), "not the request's fields"),
        (lambda g: g["2"]["inputs"].update({"cfg": float("nan")}), "finite"),
        (lambda g: g["2"]["inputs"].update({"steps": "20"}), "steps must be a whole number"),
        (lambda g: g["2"]["inputs"].update({"candidates": "[]"}), "non-empty list"),
        (lambda g: g["2"]["inputs"].update({"candidates": "{"}), "JSON list"),
        (lambda g: g["1"]["inputs"].update({"extra": 1}), "just a ckpt_name"),
        (lambda g: g["3"]["inputs"].update({"wire_dtype": "int8"}), "wire_dtype"),
    ]
    for edit, message in cases:
        with pytest.raises(ProtocolError, match=message):
            parse_server_prompt(broken(edit))

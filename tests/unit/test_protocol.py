"""The wire contract: request validation, the exact graph sent, the latent payload."""
from __future__ import annotations

import base64
import dataclasses
import json

import pytest
import torch

from obclip_nodes.protocol import CloudRequest, Handoff, ProtocolError, build_server_prompt, decode_payload, encode_payload
from obclip_nodes.protocol.payload import UI_PAYLOAD, UI_ROWS
from obclip_nodes.protocol.request import encode_body

CANDIDATES = ("a photo of a man", "a photo of a woman")


def handoff(**kw) -> Handoff:
    base = dict(family="SD15", latent_format="SD15", scale_factor=0.18215, latent_channels=4, model_type="EPS",
                sigma_min=0.0292, sigma_max=14.6146, steps=4, cloud_steps=2, sampler="euler",
                scheduler="normal", seed=3, sigmas=(14.6, 3.0, 1.0, 0.3, 0.0))
    return Handoff(**{**base, **kw})


def test_server_graph_has_fixed_ids_and_only_public_fields():
    graph = build_server_prompt(CloudRequest(candidates=CANDIDATES, checkpoint="big.safetensors", seed=5))
    assert list(graph) == ["1", "2", "3"]
    assert [n["class_type"] for n in graph.values()] == ["CheckpointLoaderSimple", "ObCLIPServerSampler",
                                                         "ObCLIPServerReturn"]
    inputs = graph["2"]["inputs"]
    assert json.loads(inputs["candidates"]) == list(CANDIDATES)
    assert inputs["seed"] == 5 and inputs["model"] == ["1", 0] and inputs["clip"] == ["1", 1]
    assert graph["3"]["inputs"] == {"latents": ["2", 0], "handoff": ["2", 1], "wire_dtype": "float32"}


def test_body_bytes_are_canonical():
    a = encode_body({"b": 1, "a": {"y": 2, "x": "é"}})
    assert a == '{"a":{"x":"é","y":2},"b":1}'.encode()


@pytest.mark.parametrize("change, message", [
    (dict(candidates=()), "non-empty"),
    (dict(candidates=("x", "x")), "duplicates"),
    (dict(checkpoint=" "), "checkpoint"),
    (dict(cloud_steps=0), "cloud_steps"),
    (dict(cloud_steps=30, steps=20), "cloud_steps"),
    (dict(width=100), "multiple of 8"),
    (dict(cfg=float("nan")), "cfg"),
    (dict(seed=-1), "seed"),
])
def test_bad_requests_are_refused_with_the_fix(change, message):
    req = dataclasses.replace(CloudRequest(candidates=CANDIDATES, checkpoint="c"), **change)
    with pytest.raises(ProtocolError, match=message):
        req.validate()


def test_payload_round_trip_keeps_values_and_handoff():
    t = torch.randn(2, 4, 8, 8) * 50
    ui = encode_payload(t, handoff())
    assert ui[UI_ROWS] == [2]
    p = decode_payload(ui, expected_rows=2)
    assert torch.equal(p.latents, t)
    assert p.handoff == handoff() and p.handoff.stop_sigma == 1.0
    assert p.handoff.remaining_sigmas == (1.0, 0.3, 0.0)
    assert base64.b64decode(ui[UI_PAYLOAD][0])[8:].lstrip(b" ").startswith(b"{")  # safetensors, not pickle


def test_payload_is_byte_stable():
    t = torch.arange(2 * 4 * 2 * 2, dtype=torch.float32).reshape(2, 4, 2, 2)
    assert encode_payload(t, handoff()) == encode_payload(t.clone(), handoff())


def _tamper(ui, raw_edit):
    raw = bytearray(base64.b64decode(ui[UI_PAYLOAD][0]))
    raw_edit(raw)
    return {**ui, UI_PAYLOAD: [base64.b64encode(bytes(raw)).decode()]}


def test_payload_refuses_corruption_missing_rows_and_garbage():
    ui = encode_payload(torch.ones(3, 4, 2, 2), handoff())
    with pytest.raises(ProtocolError, match="checksum"):
        decode_payload(_tamper(ui, lambda r: r.__setitem__(-1, r[-1] ^ 1)), expected_rows=3)
    with pytest.raises(ProtocolError, match="every candidate"):
        decode_payload(ui, expected_rows=4)
    with pytest.raises(ProtocolError, match="no ObCLIP latent payload"):
        decode_payload({"images": []}, expected_rows=3)
    with pytest.raises(ProtocolError, match="base64"):
        decode_payload({**ui, UI_PAYLOAD: ["***"]}, expected_rows=3)
    nan = encode_payload(torch.full((3, 4, 2, 2), float("nan")), handoff())
    with pytest.raises(ProtocolError, match="NaN"):
        decode_payload(nan, expected_rows=3)
    with pytest.raises(ProtocolError, match="limit"):
        decode_payload(ui, expected_rows=3, max_bytes=64)


def test_payload_refuses_wrong_channel_count():
    ui = encode_payload(torch.ones(1, 16, 2, 2), handoff())
    with pytest.raises(ProtocolError, match="channels"):
        decode_payload(ui, expected_rows=1)


@pytest.mark.parametrize("change, message", [
    (dict(cloud_steps=0), "cloud ran"),
    (dict(sigmas=(1.0, 0.0)), "sigmas for"),
    (dict(sigmas=(1.0, 2.0, 1.0, 0.3, 0.0)), "increase"),
    (dict(version=99), "update the ObCLIP pack"),
])
def test_handoff_validation(change, message):
    with pytest.raises(ProtocolError, match=message):
        handoff(**change).validate()


def test_handoff_json_round_trip_and_missing_fields():
    h = handoff()
    assert Handoff.from_json(h.to_json()) == h
    raw = json.loads(h.to_json())
    del raw["sigmas"]
    with pytest.raises(ProtocolError, match="lacks"):
        Handoff.from_json(json.dumps(raw))


def test_float16_wire_halves_the_bytes_and_decodes_to_float32():
    t = torch.randn(6, 4, 16, 16) * 80
    exact, half = encode_payload(t, handoff()), encode_payload(t, handoff(), "float16")
    p = decode_payload(half, expected_rows=6)
    assert p.wire_dtype == "float16" and p.latents.dtype == torch.float32
    assert torch.allclose(p.latents, t, rtol=1e-3, atol=1e-3) and not torch.equal(p.latents, t)
    assert decode_payload(exact, expected_rows=6).wire_dtype == "float32"
    raw = len(base64.b64decode(half[UI_PAYLOAD][0]))
    assert raw < 1.05 * t.numel() * 2 < len(base64.b64decode(exact[UI_PAYLOAD][0]))
    with pytest.raises(ProtocolError, match="float16 range"):
        encode_payload(torch.full((1, 4, 2, 2), 1e6), handoff(), "float16")


def test_wire_dtype_is_a_public_request_field():
    graph = build_server_prompt(CloudRequest(candidates=CANDIDATES, checkpoint="c", wire_dtype="float16"))
    assert graph["3"]["inputs"]["wire_dtype"] == "float16"
    with pytest.raises(ProtocolError, match="wire dtype"):
        CloudRequest(candidates=CANDIDATES, checkpoint="c", wire_dtype="int8").validate()

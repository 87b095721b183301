"""Server-side nodes: run on the cloud (or in a local simulation graph)."""
from __future__ import annotations

import dataclasses
import json

from .v3 import io

from ..acceleration import AccelerationSettings, accelerate
from ..protocol.payload import encode_payload, encode_payload_bytes, fetch_ui
from ..protocol.request import RESULT_KEY_INPUT, SERVER_RETURN, SERVER_SAMPLER, WIRE_DTYPES, request_digest
from ..sampling import encode_batch, partial_sample
from .common import current_prompt_id, generation_inputs, parse_candidates
from .types import Acceleration, Candidates, HandoffType


class ServerSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=SERVER_SAMPLER,
            display_name="ObCLIP Server Sampler",
            category="ObCLIP/server",
            description="Runs the first k of T steps for ALL candidates in one batch, from one shared "
                        "noise. The cloud runs this node for the Cloud Partial Sampler; put it in a local "
                        "graph to simulate the cloud.",
            inputs=[
                io.Model.Input("model", tooltip="The large (cloud) model."),
                io.Clip.Input("clip"),
                io.MultiType.Input(io.String.Input("candidates", multiline=True, default="[]"), types=[Candidates],
                                   tooltip="The public candidate list (JSON list, or a Candidate Expander link)."),
                *generation_inputs(),
                io.MultiType.Input(io.String.Input("acceleration", default="{}"), types=[Acceleration],
                                   tooltip="Cache Accelerator settings (JSON object or a link)."),
            ],
            outputs=[io.Latent.Output("latents", display_name="latents",
                                      tooltip="N rows, one per candidate, with leftover noise."),
                     HandoffType.Output("handoff", display_name="handoff")],
        )

    @classmethod
    def fingerprint_inputs(cls, **inputs):
        # Never cached: a cache hit (and ComfyUI's execution_cached event, and the time saved) would tell a
        # tenant that another tenant sent exactly this request before.
        return float("nan")

    @classmethod
    def execute(cls, model, clip, candidates, negative, seed, steps, cloud_steps, cfg, sampler_name,
                scheduler, width, height, acceleration) -> io.NodeOutput:
        prompts = parse_candidates(candidates)
        accel_dict = acceleration.to_dict() if isinstance(acceleration, AccelerationSettings) \
            else json.loads(acceleration or "{}")
        accel = acceleration if isinstance(acceleration, AccelerationSettings) \
            else AccelerationSettings.from_dict(accel_dict)
        model, accel_report = accelerate(model, accel, n_candidates=len(prompts))
        positive = encode_batch(clip, prompts)
        negative_cond = encode_batch(clip, [negative])
        latents, handoff = partial_sample(model, positive, negative_cond, n=len(prompts), width=width,
                                          height=height, seed=seed, steps=steps, cloud_steps=cloud_steps,
                                          cfg=cfg, sampler=sampler_name, scheduler=scheduler)
        # The digest of what was actually sampled: the client refuses a payload computed for another request.
        digest = request_digest(candidates=prompts, negative=negative, seed=seed, steps=steps,
                                cloud_steps=cloud_steps, cfg=cfg, sampler=sampler_name, scheduler=scheduler,
                                width=width, height=height, acceleration=accel_dict)
        handoff = dataclasses.replace(handoff, server_report={"acceleration": accel_report}, request_digest=digest)
        return io.NodeOutput(latents, handoff)


class ServerReturn(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=SERVER_RETURN,
            display_name="ObCLIP Server Return",
            category="ObCLIP/server",
            description="Returns all N latents and the hand-off data to the client as checksummed "
                        "safetensors, held in memory for one binary fetch by the client that holds the "
                        "request's secret key (no file is written on the server, and the bytes are not "
                        "kept in /history).",
            inputs=[io.Latent.Input("latents"), HandoffType.Input("handoff"),
                    io.Combo.Input("wire_dtype", options=list(WIRE_DTYPES), default="float32", optional=True,
                                   tooltip="float32 keeps the hand-off exact; float16 halves the bytes."),
                    io.String.Input(RESULT_KEY_INPUT, default="", optional=True,
                                    tooltip="Set by the Cloud Partial Sampler: sha256 of its secret. Only the "
                                            "holder of the secret can fetch the result. Empty: nothing is kept.")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def fingerprint_inputs(cls, latents, handoff, wire_dtype="float32", result_key_sha256=""):
        return float("nan")  # never serve a cached ui: each prompt id needs its own stored result

    @classmethod
    def execute(cls, latents, handoff, wire_dtype="float32", result_key_sha256="") -> io.NodeOutput:
        from .. import cloud_server
        from ..protocol.routes import result_path
        key = str(result_key_sha256 or "")
        raw, sha, rows = encode_payload_bytes(latents["samples"], handoff, wire_dtype)
        prompt_id = current_prompt_id()
        if cloud_server.store_result(prompt_id, raw, key):
            return io.NodeOutput(ui=fetch_ui(result_path(prompt_id), sha, rows, len(raw)))
        if cloud_server.serving():  # a graph without a result key on a server: keep nothing nobody may fetch
            return io.NodeOutput(ui={"text": [f"{rows} latents computed (sha256 {sha[:12]}); not kept: this "
                                              "graph carries no result key (only the Cloud Partial Sampler's "
                                              "requests are fetched)"]})
        return io.NodeOutput(ui=encode_payload(latents["samples"], handoff, wire_dtype))  # no server: inline base64

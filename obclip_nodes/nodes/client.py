"""Client-side nodes: they run on the user's own (device) ComfyUI."""
from __future__ import annotations

import asyncio

import comfy.model_management
import comfy.utils
from comfy_api.latest import io

from ..acceleration import AccelerationSettings
from ..privacy import PRESETS, ExpansionError, expand_prompt
from ..protocol import CloudRequest, ProtocolError
from ..remote import CloudClient, CloudError, RemoteSettings
from ..sampling import IncompatibleModelError, encode_batch, finish_sample
from .common import generation_inputs
from .types import Acceleration, Candidates, HandoffType, PrivateSelection, Selection


class CandidateExpander(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPCandidateExpander",
            display_name="ObCLIP Candidate Expander",
            category="ObCLIP",
            description="Turns your prompt into N candidates that differ only in sensitive attributes "
                        "(gender, age, ethnicity...). The cloud sees all N in a fixed order; which one is "
                        "yours stays on this machine.",
            inputs=[
                io.String.Input("prompt", multiline=True, default=""),
                io.Combo.Input("preset", options=list(PRESETS), default=PRESETS[0],
                               tooltip="'paper' reproduces the ObCLIP paper's value spaces exactly."),
                io.String.Input("attributes", default="", tooltip="Comma-separated attribute types to "
                                "protect (empty: all the preset knows)."),
                io.String.Input("lexicon_path", default="", tooltip="Optional JSON lexicon file that "
                                "replaces the preset."),
                io.Int.Input("max_candidates", default=32, min=1, max=256),
                io.Boolean.Input("refuse_if_nothing_sensitive", default=False,
                                 tooltip="Stop instead of sending a prompt that has nothing to hide among."),
            ],
            outputs=[Candidates.Output("candidates", display_name="candidates", tooltip="Public: what the cloud will see."),
                     Selection.Output("selection", display_name="selection", tooltip="Private: which candidate is real. Only the "
                                      "Latent Selector and Device Finisher accept it.")],
        )

    @classmethod
    def execute(cls, prompt, preset, attributes, lexicon_path, max_candidates,
                refuse_if_nothing_sensitive) -> io.NodeOutput:
        attrs = [a.strip() for a in attributes.split(",") if a.strip()] or None
        try:
            exp = expand_prompt(prompt, attrs, lexicon_path.strip() or preset, max_candidates=max_candidates)
        except ExpansionError as e:
            raise ValueError(f"ObCLIP Candidate Expander: {e}") from None
        if exp.n == 1 and refuse_if_nothing_sensitive:
            raise ValueError("ObCLIP Candidate Expander: no sensitive attribute found, so nothing would be "
                             "protected; rephrase, add a lexicon, or turn off refuse_if_nothing_sensitive")
        lines = [f"N = {exp.n} candidates; attributes: {', '.join(exp.attributes) or 'none'}"]
        if exp.n == 1:
            lines.append("WARNING: nothing sensitive was found; the cloud sees your prompt as is.")
        lines += [f"  {i}: {c}" for i, c in enumerate(exp.candidates)]
        lines.append("The server learns: " + exp.server_learns)
        lines += [f"Leak warning: {w}" for w in exp.leak_warnings]
        selection = PrivateSelection(real_index=exp.real_index, prompt=exp.real_prompt, n=exp.n)
        return io.NodeOutput(tuple(exp.candidates), selection, ui={"text": ["\n".join(lines)]})


class CacheAccelerator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPCacheAccelerator",
            display_name="ObCLIP Cache Accelerator",
            category="ObCLIP",
            description="Chooses the cloud-side cache strategies for the N-candidate batch. This version "
                        "sends and validates the settings; the strategies themselves are not applied yet "
                        "and the node says so.",
            is_experimental=True,
            inputs=[
                io.Boolean.Input("batch_reuse", default=False),
                io.Boolean.Input("attention_cache", default=False),
                io.Boolean.Input("block_skip", default=False),
                io.Boolean.Input("uncond_dedup", default=False),
                io.Int.Input("cache_point", default=3, min=0, max=1000),
                io.Int.Input("skip_point", default=3, min=0, max=1000),
                io.Int.Input("refresh_every", default=5, min=1, max=1000),
            ],
            outputs=[Acceleration.Output("acceleration", display_name="acceleration")],
        )

    @classmethod
    def execute(cls, **settings) -> io.NodeOutput:
        accel = AccelerationSettings.from_dict(settings)
        not_applied = [s for s in accel.requested if s not in accel.applied]
        text = (f"requested: {', '.join(accel.requested) or 'none'}; "
                f"not applied in this version: {', '.join(not_applied) or 'none'}")
        return io.NodeOutput(accel, ui={"text": [text]})


class CloudPartialSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPCloudPartialSampler",
            display_name="ObCLIP Cloud Partial Sampler",
            category="ObCLIP",
            description="Sends the public candidate list to a remote ComfyUI, which runs the first k steps "
                        "for all candidates with its large model; fetches all N latents back. The real "
                        "choice never leaves this machine. Token: environment variable OBCLIP_CLOUD_TOKEN.",
            inputs=[
                Candidates.Input("candidates"),
                io.String.Input("server_url", default="http://127.0.0.1:8188",
                                tooltip="The cloud ComfyUI (http/https). Never this same server."),
                io.String.Input("cloud_checkpoint", default="", tooltip="Checkpoint name on the cloud server."),
                *generation_inputs(),
                io.Int.Input("timeout_s", default=600, min=5, max=86400, tooltip="Limit for the whole remote run."),
                Acceleration.Input("acceleration", optional=True),
            ],
            outputs=[io.Latent.Output("latents", display_name="latents",
                                      tooltip="All N candidates' latents (k steps done)."),
                     HandoffType.Output("handoff", display_name="handoff")],
        )

    @classmethod
    async def execute(cls, candidates, server_url, cloud_checkpoint, negative, seed, steps, cloud_steps, cfg,
                      sampler_name, scheduler, width, height, timeout_s, acceleration=None) -> io.NodeOutput:
        accel = acceleration or AccelerationSettings()
        try:
            req = CloudRequest(candidates=tuple(candidates), checkpoint=cloud_checkpoint.strip(),
                               negative=negative, seed=seed, steps=steps, cloud_steps=cloud_steps, cfg=cfg,
                               sampler=sampler_name, scheduler=scheduler, width=width, height=height,
                               acceleration=accel.to_dict()).validate()
        except ProtocolError as e:
            raise ValueError(f"ObCLIP Cloud Partial Sampler: {e}") from None
        pbar = comfy.utils.ProgressBar(cloud_steps)
        client = CloudClient(RemoteSettings(url=server_url, total_timeout=float(timeout_s)),
                             own_prompt_id=_current_prompt_id())
        try:
            result = await client.run(req, on_progress=lambda v, m: pbar.update_absolute(v, m),
                                      should_cancel=comfy.model_management.processing_interrupted)
        except CloudError as e:
            comfy.model_management.throw_exception_if_processing_interrupted()
            raise RuntimeError(f"ObCLIP Cloud Partial Sampler: {e}") from None
        p = result.payload
        report = {"n": int(p.latents.shape[0]), "rows_fetched": int(p.latents.shape[0]),
                  "cloud_steps": cloud_steps, "steps": steps, "family": p.handoff.family,
                  "latent_format": p.handoff.latent_format, "payload_sha256": p.sha256,
                  "payload_bytes": p.nbytes, "bytes_sent": result.bytes_sent,
                  "bytes_received": result.bytes_received, "sent_digest": result.sent_digest,
                  "remote_prompt_id": result.prompt_id,
                  "timings": {k: round(v, 3) for k, v in result.timings.items()}}
        text = (f"fetched all {report['rows_fetched']} latents ({p.nbytes / 1024:.1f} KiB, "
                f"{p.handoff.family}) in {result.timings['total_s']:.2f} s")
        return io.NodeOutput({"samples": p.latents}, p.handoff,
                             ui={"text": [text], "obclip_report": [report]})


def _current_prompt_id() -> str | None:
    try:
        from comfy_execution.utils import get_executing_context
        ctx = get_executing_context()
        return ctx.prompt_id if ctx else None
    except ImportError:
        return None


class LatentSelector(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPLatentSelector",
            display_name="ObCLIP Latent Selector",
            category="ObCLIP",
            description="Keeps the real candidate's latent from the N fetched ones, on this machine.",
            inputs=[io.Latent.Input("latents"), Selection.Input("selection")],
            outputs=[io.Latent.Output("latent", display_name="latent")],
        )

    @classmethod
    def execute(cls, latents, selection: PrivateSelection) -> io.NodeOutput:
        samples = latents["samples"]
        if samples.shape[0] != selection.n:
            raise ValueError(f"ObCLIP Latent Selector: got {samples.shape[0]} latents for {selection.n} "
                             "candidates; connect the latents that came from the same Candidate Expander")
        i = selection.real_index
        out = {k: v for k, v in latents.items() if k not in ("samples", "batch_index", "noise_mask")}
        out["samples"] = samples[i:i + 1].clone()
        mask = latents.get("noise_mask")
        if mask is not None:
            out["noise_mask"] = mask[i:i + 1] if mask.shape[0] == selection.n else mask
        return io.NodeOutput(out)


class DeviceFinisher(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPDeviceFinisher",
            display_name="ObCLIP Device Finisher",
            category="ObCLIP",
            description="Finishes steps k..T with a small local model on the real prompt only, starting "
                        "at the exact noise level where the cloud stopped.",
            inputs=[
                io.Model.Input("model", tooltip="The small local model; must share the cloud's latent space."),
                io.Clip.Input("clip"),
                io.Latent.Input("latent", tooltip="The real candidate's latent from the Latent Selector."),
                Selection.Input("selection"),
                HandoffType.Input("handoff"),
                io.String.Input("negative", multiline=True, default=""),
                io.Float.Input("cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01),
            ],
            outputs=[io.Latent.Output("finished", display_name="latent")],
        )

    @classmethod
    def execute(cls, model, clip, latent, selection: PrivateSelection, handoff, negative, cfg) -> io.NodeOutput:
        positive = encode_batch(clip, [selection.prompt])
        negative_cond = encode_batch(clip, [negative])
        try:
            out = finish_sample(model, positive, negative_cond, latent, handoff, cfg=cfg)
        except IncompatibleModelError as e:
            raise ValueError(f"ObCLIP Device Finisher: {e}") from None
        return io.NodeOutput(out)

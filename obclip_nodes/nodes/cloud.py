"""ObCLIP Cloud Partial Sampler: the only node that talks to the untrusted server."""
from __future__ import annotations

import comfy.model_management
import comfy.utils
from .v3 import io

from ..acceleration import AccelerationSettings
from ..privacy import ExpansionError, check_negative
from ..protocol import CloudRequest, ProtocolError
from ..protocol.request import WIRE_DTYPES
from ..remote import CloudClient, CloudError, RemoteSettings
from .common import current_prompt_id, generation_inputs
from .types import Acceleration, Candidates, HandoffType


class CloudPartialSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPCloudPartialSampler",
            display_name="ObCLIP Cloud Partial Sampler",
            category="ObCLIP",
            description="Sends the public candidate list to a remote ComfyUI, which runs the first k steps "
                        "for all candidates with its large model; fetches all N latents back. The real "
                        "choice never leaves this machine. Token: the secrets file, or OBCLIP_CLOUD_TOKEN with "
                        "OBCLIP_CLOUD_URL; it goes only to that server.",
            inputs=[
                Candidates.Input("candidates"),
                io.String.Input("server_url", default="http://127.0.0.1:8188",
                                tooltip="The cloud ComfyUI (http/https). Never this same server. Several URLs, "
                                        "comma-separated: the one with the shortest queue is used, the next ones "
                                        "on connection errors. Credentials and CA files: environment or secrets "
                                        "file, never here."),
                io.String.Input("cloud_checkpoint", default="", tooltip="Checkpoint name on the cloud server."),
                *generation_inputs(),
                io.Int.Input("timeout_s", default=600, min=5, max=86400, tooltip="Limit for the whole remote run."),
                Acceleration.Input("acceleration", optional=True),
                io.Combo.Input("wire_precision", options=list(WIRE_DTYPES), default="float32", optional=True,
                               tooltip="float32: exact hand-off. float16: half the download, ~5e-4 relative "
                                       "rounding of the latents."),
            ],
            outputs=[io.Latent.Output("latents", display_name="latents",
                                      tooltip="All N candidates' latents (k steps done)."),
                     HandoffType.Output("handoff", display_name="handoff")],
        )

    @classmethod
    async def execute(cls, candidates, server_url, cloud_checkpoint, negative, seed, steps, cloud_steps, cfg,
                      sampler_name, scheduler, width, height, timeout_s, acceleration=None,
                      wire_precision="float32") -> io.NodeOutput:
        accel = acceleration or AccelerationSettings()
        try:  # the negative goes to the cloud verbatim: same detector, same lexicon and override as the expander
            check_negative(negative, getattr(candidates, "lexicon", None),
                           allow_unprotected=getattr(candidates, "allow_unprotected", False))
        except ExpansionError as e:
            raise ValueError(f"ObCLIP Cloud Partial Sampler: {e}") from None
        try:
            req = CloudRequest(candidates=tuple(candidates), checkpoint=cloud_checkpoint.strip(),
                               negative=negative, seed=seed, steps=steps, cloud_steps=cloud_steps, cfg=cfg,
                               sampler=sampler_name, scheduler=scheduler, width=width, height=height,
                               acceleration=accel.to_dict(), wire_dtype=wire_precision).validate()
        except ProtocolError as e:
            raise ValueError(f"ObCLIP Cloud Partial Sampler: {e}") from None
        pbar = comfy.utils.ProgressBar(cloud_steps)
        try:
            client = CloudClient(RemoteSettings(url=server_url, total_timeout=float(timeout_s)),
                                 own_prompt_id=current_prompt_id())
            result = await client.run(req, on_progress=lambda v, m: pbar.update_absolute(v, m),
                                      should_cancel=comfy.model_management.processing_interrupted)
        except CloudError as e:
            comfy.model_management.throw_exception_if_processing_interrupted()
            raise RuntimeError(f"ObCLIP Cloud Partial Sampler: {e}") from None
        p = result.payload
        block = getattr(candidates, "block", None)      # public: which anonymity block of how many was sent
        report = {"n": int(p.latents.shape[0]), "rows_fetched": int(p.latents.shape[0]), "block": block,
                  "cloud_steps": cloud_steps, "steps": steps, "family": p.handoff.family,
                  "latent_format": p.handoff.latent_format, "payload_sha256": p.sha256,
                  "payload_bytes": p.nbytes, "bytes_sent": result.bytes_sent,
                  "bytes_received": result.bytes_received, "sent_digest": result.sent_digest,
                  "remote_prompt_id": result.prompt_id, "server_report": p.handoff.server_report,
                  "server": result.server, "mode": result.mode, "failed_over_from": result.attempts,
                  "reconnects": result.reconnects, "retried_after_lost_worker": result.retried,
                  "timings": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.timings.items()}}
        text = (f"fetched all {report['rows_fetched']} latents ({p.nbytes / 1024:.1f} KiB, "
                f"{p.handoff.family}) from {result.server} in {result.timings['total_s']:.2f} s")
        if block:
            text += (f"\nsent anonymity block {block['index'] + 1} of {block['count']}: N = {len(candidates)} of "
                     f"{block['total']} candidates")
        if result.mode == "stock":
            text += (f"\nSTOCK-NODES MODE: the cloud lacks the ObCLIP pack, so it ran one stock sampler per "
                     f"candidate, no acceleration, and left the latent files on its disk; the cloud model was "
                     f"assumed to be {p.handoff.family} (set OBCLIP_STOCK_FAMILY otherwise)")
        if result.attempts:
            text += "\nfailed over from: " + "; ".join(u for u, _ in result.attempts)
        if result.retried:
            text += (f"\nretried {len(result.retried)} time(s) after the cloud worker running it was lost "
                     f"({result.retried[-1][1]}); the result is identical because the request is deterministic "
                     "(same seed, steps and model), and each retry sent the same public request with fresh ids")
        return io.NodeOutput({"samples": p.latents}, p.handoff,
                             ui={"text": [text], "obclip_report": [report]})

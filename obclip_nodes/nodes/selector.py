"""ObCLIP Latent Selector: keeps the real candidate's row, locally."""
from __future__ import annotations

from .v3 import io

from .types import PrivateSelection, Selection


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

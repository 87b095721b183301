"""ObCLIP Cache Accelerator: the cloud-side cache strategies, chosen on the client."""
from __future__ import annotations

from .v3 import io

from ..acceleration import AccelerationSettings
from ..acceleration.settings import EXACT, PRESET_NAMES, PRESETS, SKIP_MODES
from .types import Acceleration


class CacheAccelerator(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ObCLIPCacheAccelerator",
            display_name="ObCLIP Cache Accelerator",
            category="ObCLIP",
            description="Chooses the cloud-side cache strategies for the N-candidate batch. They run on the "
                        "cloud as ModelPatcher wrappers and depend only on public settings (the pivot is a "
                        "fixed index, never your real candidate). uncond_dedup is exact; the others trade a "
                        "little fidelity for FLOPs. The cloud reports the share of UNet FLOPs it skipped.",
            is_experimental=True,
            inputs=[
                io.Boolean.Input("uncond_dedup", default=True,
                                 tooltip="Exact: the uncond rows are identical at step 0 (shared noise and "
                                         "negative), so they run once."),
                io.Boolean.Input("uncond_share", default=False, optional=True,
                                 tooltip="Approximate: the uncond branch runs for the pivot row only and is "
                                         "shared by all candidates (the largest saving)."),
                io.Boolean.Input("batch_reuse", default=False,
                                 tooltip="Paper Alg. 2: before the cache point, one attention map (pivot) "
                                         "for all candidates; values stay per candidate."),
                io.Boolean.Input("attention_cache", default=False,
                                 tooltip="T-GATE style: from the cache point on, attention outputs are reused, "
                                         "refreshed every refresh_every steps."),
                io.Boolean.Input("block_skip", default=False,
                                 tooltip="DeepCache style: from the skip point on, deep features are reused."),
                io.Int.Input("cache_point", default=3, min=0, max=1000, tooltip="r, in cloud steps."),
                io.Int.Input("skip_point", default=3, min=0, max=1000, tooltip="s, in cloud steps."),
                io.Int.Input("refresh_every", default=5, min=1, max=1000),
                io.Int.Input("pivot_index", default=0, min=0, max=1000, optional=True,
                             tooltip="Public fixed candidate index whose maps are shared. Not your real one "
                                     "on purpose: it is the same whichever candidate is real."),
                io.Combo.Input("skip_mode", options=list(SKIP_MODES), default="up_path", optional=True,
                               tooltip="up_path: paper (down and middle cached, all up blocks run); "
                                       "deepcache: only the outer blocks run."),
                io.Int.Input("skip_branch", default=0, min=0, max=20, optional=True,
                             tooltip="Input blocks 0..b always run (deepcache: and the last b+1 up blocks)."),
                io.Int.Input("skip_refresh_every", default=0, min=0, max=1000, optional=True,
                             tooltip="DeepCache's interval: after the skip point the deep features are recomputed "
                                     "every M steps (0: never, the paper's form)."),
                io.Combo.Input("preset", options=list(PRESET_NAMES), default="custom", optional=True,
                               tooltip="exact: changes no output. balanced and fastest: points on the measured "
                                       "speed/quality frontier (docs/acceleration.md). A preset replaces every "
                                       "setting above; custom uses them."),
            ],
            outputs=[Acceleration.Output("acceleration", display_name="acceleration")],
        )

    @classmethod
    def execute(cls, preset: str = "custom", **settings) -> io.NodeOutput:
        accel = AccelerationSettings.from_dict(settings) if preset == "custom" else AccelerationSettings.preset(preset)
        approx = [s for s in accel.applied if s not in EXACT]
        text = (f"applied on the cloud: {', '.join(accel.applied) or 'none'}"
                + (f"; approximate: {', '.join(approx)}" if approx else "; exact (outputs unchanged)"))
        if preset in PRESETS:
            text = f"preset {preset} (the settings above are ignored; choose custom to use them): " + text
        return io.NodeOutput(accel, ui={"text": [text]})

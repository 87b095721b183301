"""Known cloud -> device model pairs (the paper's pairs), with settings that hand off well.

Every pair shares one latent space. The Device Finisher's refusal messages suggest devices from here,
and the shipped workflows use these settings.
"""
from __future__ import annotations

from dataclasses import dataclass

from .schedule import HANDOFF_MODES

# How the device model is loaded on the client. The paper's small models are published as diffusers
# folders (model_index.json, unet/, text_encoder/, vae/), which stock ComfyUI cannot detect (BK-SDM) or
# loads only in parts; the pack's loader builds them from their own config.json files.
DEVICE_LOADER = "ObCLIP Device Model Loader"   # folder in models/diffusers/
LOAD_CHECKPOINT = "Load Checkpoint"             # single .safetensors in models/checkpoints/


@dataclass(frozen=True)
class PairPreset:
    name: str
    cloud: str
    device: str
    latent_format: str         # comfy.latent_formats class both models use
    steps: int                 # T of the cloud schedule
    cloud_steps: int           # k
    sampler: str
    scheduler: str
    schedule: str = HANDOFF_MODES[0]   # Device Finisher mode
    device_steps: int = 25             # sigma-matched mode only
    device_sampler: str = "euler"
    device_loader: str = DEVICE_LOADER
    device_repo: str = ""              # where the device model is published (Hugging Face Hub)


PRESETS = (
    PairPreset("SD1.4 -> BK-SDM-Small", "CompVis SD-v1.4", "nota-ai BK-SDM-Small", "SD15", 25, 10, "euler", "normal",
               device_repo="nota-ai/bk-sdm-small"),
    PairPreset("SD1.4 -> BK-SDM-Tiny", "CompVis SD-v1.4", "nota-ai BK-SDM-Tiny", "SD15", 25, 10, "euler", "normal",
               device_repo="nota-ai/bk-sdm-tiny"),
    PairPreset("Realistic Vision v4 -> small-sd", "SG161222 Realistic_Vision_V4.0", "segmind small-sd", "SD15",
               25, 10, "euler", "normal", device_repo="segmind/small-sd"),
    PairPreset("SDXL -> KOALA-700M", "SDXL base 1.0", "etri-vilab KOALA-700M", "SDXL", 25, 10, "euler", "normal",
               device_repo="etri-vilab/koala-700m"),
    PairPreset("SDXL -> SSD-1B", "SDXL base 1.0", "segmind SSD-1B", "SDXL", 25, 10, "euler", "normal",
               device_repo="segmind/SSD-1B"),
    PairPreset("SDXL -> Segmind-Vega", "SDXL base 1.0", "segmind Segmind-Vega", "SDXL", 25, 10, "euler", "normal",
               device_repo="segmind/Segmind-Vega"),
    # A step-distilled cloud: its 8-step LCM schedule stops at k=4; the device resumes on its own
    # 25-step schedule from that exact sigma instead of the paper's hand-tuned shift (Δt = 8).
    PairPreset("LCM-SDXL -> KOALA-700M", "latent-consistency LCM-SDXL", "etri-vilab KOALA-700M", "SDXL", 8, 4,
               "lcm", "sgm_uniform", schedule=HANDOFF_MODES[1], device_steps=25, device_sampler="euler",
               device_repo="etri-vilab/koala-700m"),
    # The pack's own trained demo pair (obclip_nodes/miniworld): 64x64 synthetic portraits on a CPU.
    PairPreset("mini world cloud -> mini world device", "obclip-mini-cloud.safetensors",
               "obclip-mini-device.safetensors", "ObCLIPMiniWorldLatent", 20, 8, "euler", "normal",
               device_loader=LOAD_CHECKPOINT),
)


def devices_for(latent_format: str) -> list[str]:
    return sorted({p.device for p in PRESETS if p.latent_format == latent_format})

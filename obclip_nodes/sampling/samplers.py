"""How each ComfyUI sampler behaves at the cloud/device split, for warnings and documentation."""
from __future__ import annotations

from .noise import draws_step_noise

EXACT = ("euler", "ddim", "heun")  # single-step and deterministic: split == uninterrupted run
MULTISTEP = {"lms", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun",
             "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "uni_pc", "uni_pc_bh2", "ipndm",
             "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
             "res_multistep_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "gradient_estimation",
             "gradient_estimation_cfg_pp", "sa_solver", "sa_solver_pece", "er_sde"}


def split_note(sampler: str) -> str | None:
    """None when the split is exact; otherwise what the user should know."""
    if sampler in EXACT:
        return None
    notes = []
    if sampler in MULTISTEP:
        notes.append("restarts its multistep history at the hand-off")
    if draws_step_noise(sampler):
        notes.append("draws fresh noise each step, so the result differs from an uninterrupted run "
                     "(every candidate row gets the same noise, so rows still match single-prompt runs)")
    if not notes:
        return None
    return f"{sampler} " + " and ".join(notes) + "; euler or ddim hand off exactly"

"""The test models: published architectures (harness/pairs.py), detected by ComfyUI itself as what they are,
with real random weights (norms never zero). Shapes are read from the files, so this is cheap."""
from __future__ import annotations

import pytest
from safetensors import safe_open

pytestmark = pytest.mark.comfy


def detected(path) -> tuple[str, dict]:
    """ComfyUI's own detection on the file's UNet keys (meta tensors: shapes only, no weights read). `path` may
    be a test model's name: the keys and shapes of the state dict the tests build in memory (the SDXL family)."""
    import torch
    import comfy.model_detection
    if isinstance(path, str):
        from obclip_nodes.harness import test_models
        sd = {k: v for k, v in test_models.meta_state_dict(path).items() if k.startswith("model.diffusion_model.")}
    else:
        with safe_open(str(path), "pt") as f:
            sd = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()
                  if k.startswith("model.diffusion_model.")}
    config = comfy.model_detection.model_config_from_unet(sd, "model.diffusion_model.")
    assert config is not None, f"ComfyUI could not detect {getattr(path, 'name', path)}"
    return type(config).__name__, config.unet_config


def test_the_pairs_are_detected_as_their_published_architectures(comfy_root, sd15_pair):
    from obclip_nodes.harness.pairs import SDXL_PAIR
    (sd15, sd15_cfg), (bk, bk_cfg) = (detected(p) for p in sd15_pair)
    assert (sd15, bk) == ("SD15", "SD15")
    assert sd15_cfg["num_res_blocks"] == [2, 2, 2, 2] and sd15_cfg["channel_mult"] == [1, 2, 4, 4]
    # BK-SDM-Small: one res block per level, no middle block (its published config), same latent space
    assert bk_cfg["num_res_blocks"] == [1, 1, 1, 1] and bk_cfg["transformer_depth_middle"] == -2
    (vega, _), (koala, _) = (detected(n) for n in SDXL_PAIR)  # the SDXL pair is built in memory (conftest)
    assert (vega, koala) == ("Segmind_Vega", "KOALA_700M")


def test_weights_are_random_and_norms_are_never_zero(sd15_pair):
    with safe_open(str(sd15_pair[0]), "pt") as f:
        keys = list(f.keys())
        norms = [k for k in keys if k.startswith("model.diffusion_model.") and ".norm" in k and k.endswith(".weight")]
        assert norms
        for k in norms[:20]:
            t = f.get_tensor(k).float()
            assert t.abs().min() > 0.3 and t.std() > 0.01, k
        conv = f.get_tensor("model.diffusion_model.input_blocks.0.0.weight").float()
        assert conv.std() > 0.01
        assert any(k.startswith("cond_stage_model.") for k in keys) and any(k.startswith("first_stage_model.")
                                                                             for k in keys)


def test_pair_is_loaded_as_one_latent_space(sd15_pair, sd15_models):
    """As ComfyUI's checkpoint loader loads the pair (sd15_models: load_checkpoint_guess_config on each file)."""
    import torch
    from obclip_nodes.sampling import model_signature
    (cm, _, _), (dm, _, _) = sd15_models
    # stored in float16, run in float32 exactly like a float32 file: ComfyUI picks the dtype on a CPU, not the file
    with safe_open(str(sd15_pair[0]), "pt") as f:
        assert f.get_slice("model.diffusion_model.input_blocks.0.0.weight").get_dtype() == "F16"
    for m in (cm, dm):
        assert m.model.get_dtype() == torch.float32 and m.model.manual_cast_dtype is None
        assert {p.dtype for p in m.model.diffusion_model.parameters()} == {torch.float32}
    cs, ds = model_signature(cm), model_signature(dm)
    assert cs == ds and cs["family"] == "SD15"
    count = lambda m: sum(p.numel() for p in m.model.diffusion_model.parameters())
    from obclip_nodes.harness import test_models
    # the model cards' UNet sizes (tests/data/model_configs)
    assert count(cm) == test_models.spec("sd15")["params_card"]["unet"]
    assert count(dm) == 482_346_884  # tests/data/model_configs/bk-sdm-small.json: the card rounds it to 0.49B

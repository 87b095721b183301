"""The paper's device models load as published: diffusers folder -> ComfyUI, equal to diffusers.

Replicas of the published SD1.x-family configs (random weights, tests/data/model_configs/) go through
the ObCLIP Device Model Loader's path and through convert-device + the stock Load Checkpoint path;
UNet, text encoder and VAE outputs are compared with diffusers/transformers on the same weights.
The SDXL family is covered by `python -m obclip_nodes.bench device-models` (too heavy for CI here).
"""
from __future__ import annotations

import gc
import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from obclip_nodes.device_models import loader
from obclip_nodes.device_models.folder import DeviceModelError, inspect
from obclip_nodes.harness import equality, test_models

pytestmark = pytest.mark.comfy
TOL = 1e-4
# BK-SDM Small (no mid block), Tiny (3 stages) and Base (mid block) cover the three block-removed
# shapes; small-sd and tiny-sd have the Base and Tiny block layouts and run in the bench.
CI_MODELS = ("bk-sdm-small", "bk-sdm-tiny", "bk-sdm-base")


@pytest.mark.parametrize("name", CI_MODELS)
def test_node_path_equals_diffusers_and_transformers(comfy_root, name):
    src = test_models.ensure_diffusers(name)
    loaded = loader.load(src)
    assert loaded.detected_as == "SD15"
    r = equality.compare(loaded.model, loaded.clip, loaded.vae, src, "sd1")
    assert r["unet_rel_diff"] <= TOL and r["text_encoder_rel_diff"] <= TOL and r["vae_rel_diff"] <= TOL, r
    assert test_models.card_matches(name, r["params"]), (name, r["params"], test_models.spec(name)["params_card"])
    del loaded
    gc.collect()


def test_a_swapped_weight_is_caught(comfy_root):
    """The comparison can fail: two same-shaped attention weights swapped -> far above tolerance."""
    from obclip_nodes.device_models import folder, host
    src = test_models.ensure_diffusers("bk-sdm-small")
    sd = folder.single_file_state_dict(inspect(src))
    a = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    b = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_q.weight"
    sd[a], sd[b] = sd[b], sd[a]
    model, _, _ = host.load_state_dict(sd)
    assert equality.unet_rel_diff(model, src, "sd1") > 1e-3


def test_converter_output_loads_in_stock_load_checkpoint_and_equals_diffusers(comfy_root, tmp_path, capsys):
    from obclip_nodes.device_models import host
    from obclip_nodes.device_models.__main__ import main
    src = test_models.ensure_diffusers("bk-sdm-small")
    out = tmp_path / "bk-sdm-small.safetensors"
    assert main(["convert-device", str(src), str(out), "--comfyui", str(comfy_root)]) == 0
    assert "detects it as SD15" in capsys.readouterr().out
    model, clip, vae = host.load_checkpoint(out)  # exactly what Load Checkpoint runs
    assert host.family_name(model) == "SD15"
    cfg = host.unet_config(model)
    assert (cfg["num_res_blocks"], cfg.get("transformer_depth_middle")) == ([1, 1, 1, 1], -2)
    r = equality.compare(model, clip, vae, src, "sd1")
    assert max(r["unet_rel_diff"], r["text_encoder_rel_diff"], r["vae_rel_diff"]) <= TOL, r
    size = out.stat().st_size
    assert main(["convert-device", str(src), str(out), "--comfyui", str(comfy_root)]) == 1  # never overwrites
    assert "never overwrites" in capsys.readouterr().err and out.stat().st_size == size
    assert not list(tmp_path.glob("*.partial.*"))


def test_sdxl_cloud_refuses_a_node_loaded_sd1_device(comfy_root):
    from obclip_nodes.protocol import Handoff
    from obclip_nodes.sampling import (
        IncompatibleModelError,
        check_device_model,
        model_signature,
    )
    device = loader.load(test_models.ensure_diffusers("bk-sdm-small")).model
    sig = model_signature(device)
    sdxl = Handoff(**{**sig, "family": "SDXL", "latent_format": "SDXL", "scale_factor": 0.13025}, steps=4,
                   cloud_steps=2, sampler="euler", scheduler="normal", seed=0, sigmas=(14.6, 3.0, 1.0, 0.3, 0.0),
                   latent_shape=(4, 8, 8))
    with pytest.raises(IncompatibleModelError, match=r"different latent spaces.*SDXL-family device model such as"):
        check_device_model(sdxl, device, {"samples": torch.zeros(1, 4, 8, 8)})
    sd15 = Handoff(**sig, steps=4, cloud_steps=2, sampler="euler", scheduler="normal", seed=0,
                   sigmas=(14.6, 3.0, 1.0, 0.3, 0.0), latent_shape=(4, 8, 8))
    check_device_model(sd15, device, {"samples": torch.zeros(1, 4, 8, 8)})  # the SD1.5 cloud accepts it


# --- refusals (configs only; no weights are read before a folder is accepted) ---------------------------

def config_folder(tmp_path, name: str, vae: str | None = None, pipeline: str = "StableDiffusionPipeline"):
    s = test_models.spec(name)
    root = tmp_path / name
    for comp, cfg in {"unet": s["unet"], "vae": test_models.component_config(vae or s["vae"]),
                      "text_encoder": test_models.component_config("sd1_text_encoder.json")}.items():
        (root / comp).mkdir(parents=True)
        (root / comp / "config.json").write_text(json.dumps(cfg))
    (root / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    return root


def test_sd21_based_bk_sdm_v2_is_refused_with_what_differs(tmp_path):
    with pytest.raises(DeviceModelError, match=r"SD2\.x-family model \(cross_attention_dim 1024, OpenCLIP ViT-H"):
        inspect(config_folder(tmp_path, "bk-sdm-v2-small"))


def test_another_latent_space_is_refused(tmp_path):
    with pytest.raises(DeviceModelError, match=r"VAE .*scaling_factor 0\.13025\) is the SDXL latent space.*SD1"):
        inspect(config_folder(tmp_path, "bk-sdm-small", vae="sdxl_vae.json"))


def test_a_random_folder_is_refused(tmp_path):
    (tmp_path / "some-llm").mkdir()
    (tmp_path / "some-llm" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(DeviceModelError, match="not a diffusers model folder: model_index.json is missing"):
        inspect(tmp_path / "some-llm")
    flux = config_folder(tmp_path, "bk-sdm-small", pipeline="FluxPipeline")
    shutil.rmtree(flux / "unet")
    with pytest.raises(DeviceModelError, match="FluxPipeline.*has no unet/"):
        inspect(flux)


def test_pickled_weights_are_never_loaded(tmp_path):
    from obclip_nodes.device_models.folder import load_component
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(DeviceModelError, match=r"pickled weights, which the pack never loads"):
        load_component(tmp_path / "unet")


def test_host_seam(comfy_root, tmp_path):
    """The ComfyUI internals the loader touches (obclip_nodes/device_models/host.py), each checked here."""
    import inspect as pyinspect

    import comfy.sd
    import folder_paths

    from obclip_nodes.device_models import host
    for fn in (comfy.sd.load_state_dict_guess_config, comfy.sd.load_checkpoint_guess_config):
        params = pyinspect.signature(fn).parameters
        assert {"output_vae", "output_clip", "embedding_directory"} <= set(params), fn.__name__
    assert isinstance(folder_paths.get_folder_paths("diffusers"), list)
    assert isinstance(folder_paths.get_folder_paths("embeddings"), list)
    with pytest.raises(host.NotDetectedError):
        host.load_state_dict({"not.a.model.weight": torch.zeros(1)})
    loaded = loader.load(test_models.ensure_diffusers("bk-sdm-tiny"))
    assert host.family_name(loaded.model) == "SD15"
    assert host.unet_config(loaded.model)["channel_mult"] == [1, 2, 4]


def test_the_runtime_loader_does_not_need_diffusers(comfy_root):
    """diffusers is the reference in tests, not a runtime dependency: loading a folder never imports it."""
    from obclip_nodes.harness.host import REPO
    from obclip_nodes.harness.server_forker import run_python
    src = test_models.ensure_diffusers("bk-sdm-tiny")
    code = f"""
import sys
sys.path.insert(0, {str(comfy_root)!r}); sys.path.insert(0, {str(REPO)!r})
import comfy.cli_args; comfy.cli_args.args.cpu = True
import obclip_nodes.nodes
from obclip_nodes.device_models import loader
print(loader.load({str(src)!r}).detected_as, "diffusers" in sys.modules)
"""
    out = run_python(code, root=comfy_root, cwd=REPO, timeout=600)  # a fresh interpreter, forked
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["SD15", "False"]

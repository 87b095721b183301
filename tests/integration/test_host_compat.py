"""Host compatibility: one test per ComfyUI internal the pack touches (obclip_nodes/harness/host_surface.py,
docs/comfyui-internals-used.md). When a future ComfyUI changes one, the failing test says which internal
changed and which pack file relies on it, instead of some integration test failing for no clear reason."""
from __future__ import annotations

import asyncio
import inspect
import urllib.request

import pytest
import torch

from obclip_nodes.harness.host_surface import SURFACE

pytestmark = pytest.mark.comfy
ENTRY = {i.test.split("::")[-1]: i for i in SURFACE if "::" in i.test}


def host_version(root) -> str:
    text = (root / "comfyui_version.py").read_text()
    return text.split('__version__ = "')[1].split('"')[0]


def broke(request, comfy_root, detail: str):
    """Fail with the internal's name, what the pack relies on, and where."""
    item = ENTRY[request.node.name.split("[")[0]]
    pytest.fail(f"ComfyUI {host_version(comfy_root)} changed an internal the pack relies on: {item.name} "
                f"({item.what}); the pack uses it in {item.seam}. {detail}", pytrace=False)


def needs_params(request, comfy_root, fn, *names):
    have = inspect.signature(fn).parameters
    missing = [n for n in names if n not in have]
    if missing:
        broke(request, comfy_root, f"{fn.__module__}.{fn.__qualname__} no longer takes {missing} "
                                   f"(it takes {list(have)})")


def test_every_declared_internal_has_its_test_here_or_in_the_browser_tests():
    here = {name for name in globals() if name.startswith("test_")}
    for item in SURFACE:
        if item.test.startswith("test_host_compat.py::"):
            assert item.test.split("::")[1] in here, item
        else:
            assert item.test.startswith(("tests/browser/", "every integration test")), item


def test_v3_node_api(request, comfy_root):
    try:
        from obclip_nodes.nodes import v3
        from obclip_nodes.nodes import NODES, comfy_entrypoint
    except ImportError as e:
        broke(request, comfy_root, f"importing it failed: {e}")
    io = v3.io
    for name in ("ComfyNode", "Schema", "NodeOutput", "Custom", "String", "Int", "Float", "Boolean", "Combo",
                 "Clip", "Model", "Latent", "MultiType"):
        if not hasattr(io, name):
            broke(request, comfy_root, f"io.{name} is gone")
    ext = asyncio.run(comfy_entrypoint())
    if not isinstance(ext, v3.ComfyExtension) or asyncio.run(ext.get_node_list()) != NODES:
        broke(request, comfy_root, "comfy_entrypoint() no longer yields the ComfyExtension with the pack's nodes")
    for node in NODES:
        schema = node.GET_SCHEMA()
        info = node.INPUT_TYPES()  # what the server's /object_info and validation are built from
        assert schema.node_id.startswith("ObCLIP") and "required" in info, node
    # the same objects as the host's newest API: nodes behave the same whichever the host documents
    import comfy_api.latest
    assert io.Int is comfy_api.latest.io.Int or io.Int.__name__ == "Int"


def test_sampling_functions(request, comfy_root):
    import comfy.model_sampling
    import comfy.sample
    import comfy.samplers
    import latent_preview
    from comfy.k_diffusion import sampling as kds
    needs_params(request, comfy_root, comfy.sample.sample_custom, "model", "noise", "cfg", "sampler", "sigmas",
                 "positive", "negative", "latent_image", "noise_mask", "callback", "seed")
    needs_params(request, comfy_root, comfy.sample.prepare_noise, "latent_image", "seed")
    needs_params(request, comfy_root, comfy.sample.fix_empty_latent_channels, "model", "latent_image")
    needs_params(request, comfy_root, comfy.samplers.KSampler.__init__, "model", "steps", "device", "sampler",
                 "scheduler", "denoise", "model_options")
    needs_params(request, comfy_root, latent_preview.prepare_callback, "model", "steps")
    needs_params(request, comfy_root, kds.default_noise_sampler, "x", "seed")
    needs_params(request, comfy_root, kds.BrownianTreeNoiseSampler.__init__, "x", "sigma_min", "sigma_max", "seed",
                 "cpu")
    needs_params(request, comfy_root, kds.sample_euler_ancestral, "noise_sampler")
    ks = comfy.samplers.KSampler
    wanted = {"euler", "ddim", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde", "lcm"}
    if not wanted <= set(ks.SAMPLERS) or not {"normal", "karras", "simple"} <= set(ks.SCHEDULERS):
        broke(request, comfy_root, f"KSampler.SAMPLERS/SCHEDULERS lost {sorted(wanted - set(ks.SAMPLERS))}")
    if "uni_pc" not in ks.DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
        broke(request, comfy_root, "KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS changed")
    sampler = comfy.samplers.sampler_object("euler_ancestral")
    if not callable(getattr(sampler, "sampler_function", None)):
        broke(request, comfy_root, "sampler_object() no longer returns a KSAMPLER with .sampler_function")
    sigmas = comfy.samplers.calculate_sigmas(comfy.model_sampling.ModelSamplingDiscrete(), "normal", 10)
    assert len(sigmas) == 11 and abs(float(sigmas[0]) - 14.6146) < 1e-3 and float(sigmas[-1]) == 0.0, sigmas


def test_model_patcher_wrappers(request, comfy_root):
    import comfy.model_patcher as mp
    import comfy.patcher_extension as pe
    if (getattr(pe.WrappersMP, "OUTER_SAMPLE", None), getattr(pe.WrappersMP, "DIFFUSION_MODEL", None)) != \
            ("outer_sample", "diffusion_model"):
        broke(request, comfy_root, "WrappersMP.OUTER_SAMPLE / DIFFUSION_MODEL are gone or renamed")
    for name in ("clone", "add_wrapper_with_key", "add_object_patch", "get_model_object"):
        if not callable(getattr(mp.ModelPatcher, name, None)):
            broke(request, comfy_root, f"ModelPatcher.{name} is gone")
    needs_params(request, comfy_root, mp.ModelPatcher.add_wrapper_with_key, "wrapper_type", "key", "wrapper")
    opts = {"transformer_options": {"a": 1}}
    clone = mp.create_model_options_clone(opts)
    clone["transformer_options"]["b"] = 2
    if "b" in opts["transformer_options"]:
        broke(request, comfy_root, "create_model_options_clone no longer copies transformer_options")


def tiny_unet():
    """ComfyUI's own UNetModel at a tiny size, seeded random weights (norms around 1, never 0)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    unet = UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=32, num_res_blocks=[1, 1],
                     channel_mult=[1, 2], transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1],
                     transformer_depth_middle=1, context_dim=64, num_head_channels=16, use_spatial_transformer=True,
                     use_linear_in_transformer=True, dtype=torch.float32, device="cpu",
                     operations=comfy.ops.disable_weight_init)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            p.copy_((1 + 0.1 * torch.randn(p.shape, generator=g)) if p.ndim == 1 and name.endswith("weight")
                    else 0.1 * torch.randn(p.shape, generator=g))
    return unet.eval()


def test_unet_forward_copy(request, comfy_root):
    from obclip_nodes.acceleration import AccelerationSettings
    from obclip_nodes.acceleration.state import RunState
    from obclip_nodes.acceleration.unet import VERIFIED_STOCK_FORWARDS, stock_forward_fingerprint, unet_forward
    fp = stock_forward_fingerprint()
    if fp not in VERIFIED_STOCK_FORWARDS.values():
        broke(request, comfy_root, f"UNetModel._forward (fingerprint {fp}) differs from every forward the copy "
              f"was checked against ({', '.join(VERIFIED_STOCK_FORWARDS)}): diff the host's forward against "
              "unet_forward, port the change, then add the fingerprint to VERIFIED_STOCK_FORWARDS")
    unet = tiny_unet()
    g = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 5, 64, generator=g)
    ts = torch.tensor([999.0, 500.0, 1.0])
    patches = {}
    from comfy.ldm.modules.diffusionmodules import openaimodel
    if "middle_block_after_patch" in inspect.getsource(openaimodel.UNetModel._forward):
        patches["middle_block_after_patch"] = [lambda a: {**a, "h": a["h"] * 1.5}]
    st = RunState(AccelerationSettings.from_dict({"block_skip": True, "skip_point": 99}), 3)
    with torch.no_grad():
        stock = unet._forward(x, ts, ctx, transformer_options={"patches": dict(patches)})
        ours = unet_forward(unet, st, x, ts, ctx, transformer_options={"patches": dict(patches)})
    if not torch.equal(stock, ours):
        broke(request, comfy_root, f"the copy no longer computes what the host's forward computes "
              f"(max difference {float((stock - ours).abs().max()):.3g}): port the host's change into unet_forward")
    assert float(stock.std()) > 0.01  # a real output, not zeros


def test_cross_attention_swap(request, comfy_root):
    from comfy.ldm.modules.attention import BasicTransformerBlock, CrossAttention
    from obclip_nodes.acceleration.attention import ObclipAttention, attention_patches
    needs_params(request, comfy_root, CrossAttention.forward, "x", "context", "value", "mask", "transformer_options")
    unet = tiny_unet()
    blocks = [m for m in unet.modules() if isinstance(m, BasicTransformerBlock)]
    if not blocks or not all(isinstance(getattr(b, "attn1", None), CrossAttention) and
                             isinstance(getattr(b, "attn2", None), CrossAttention) for b in blocks):
        broke(request, comfy_root, "BasicTransformerBlock no longer holds CrossAttention as attn1/attn2")
    attn = blocks[0].attn2
    for name in ("to_q", "to_k", "to_v", "to_out", "heads", "dim_head", "attn_precision"):
        if not hasattr(attn, name):
            broke(request, comfy_root, f"CrossAttention.{name} is gone")
    patches = attention_patches(unet)
    assert len(patches) == 2 * len(blocks)
    # without a run state, the swapped module is the stock attention, bit for bit
    swapped = ObclipAttention(attn, "probe", "cross")
    g = torch.Generator().manual_seed(2)
    x, ctx = torch.randn(2, 16, attn.to_q.in_features, generator=g), torch.randn(2, 5, 64, generator=g)
    with torch.no_grad():
        if not torch.equal(attn(x, context=ctx), swapped(x, context=ctx)):
            broke(request, comfy_root, "CrossAttention.forward called on the swapped module differs from the stock one")


def test_prompt_id_context(request, comfy_root):
    from obclip_nodes.nodes.common import current_prompt_id
    try:
        from comfy_execution.utils import CurrentNodeContext
    except ImportError as e:
        broke(request, comfy_root, f"comfy_execution.utils.CurrentNodeContext is gone ({e})")
    assert current_prompt_id() is None  # outside an executing graph
    with CurrentNodeContext("prompt-under-test", "7"):
        got = current_prompt_id()
    if got != "prompt-under-test":
        broke(request, comfy_root, f"get_executing_context().prompt_id gave {got!r} inside CurrentNodeContext")


def test_progress_and_interrupt(request, comfy_root):
    import comfy.model_management as mm
    import comfy.utils
    for fn in (mm.processing_interrupted, mm.throw_exception_if_processing_interrupted):
        if not callable(fn):
            broke(request, comfy_root, f"{fn} is gone")
    assert mm.processing_interrupted() is False
    needs_params(request, comfy_root, comfy.utils.ProgressBar.__init__, "total")
    bar = comfy.utils.ProgressBar(4)
    bar.update_absolute(2)
    assert (bar.current, bar.total) == (2, 4)


def test_model_family_registration(request, comfy_root):
    import comfy.latent_formats
    import comfy.sd1_clip
    import comfy.supported_models
    import comfy.supported_models_base
    import folder_paths
    if not isinstance(getattr(comfy.supported_models, "models", None), list):
        broke(request, comfy_root, "comfy.supported_models.models is no longer the list detection walks")
    for cls, params in ((comfy.sd1_clip.SDClipModel.__init__, ("device", "dtype", "textmodel_json_config",
                                                             "return_projected_pooled", "model_options")),
                        (comfy.sd1_clip.SD1ClipModel.__init__, ("device", "dtype", "model_options", "clip_model")),
                        (comfy.sd1_clip.SD1Tokenizer.__init__, ("embedding_directory", "tokenizer_data", "tokenizer")),
                        (comfy.sd1_clip.SDTokenizer.__init__, ("embedding_directory", "embedding_size",
                                                               "tokenizer_data"))):
        needs_params(request, comfy_root, cls, *params)
    for name in ("process_clip_state_dict", "process_unet_state_dict", "process_clip_state_dict_for_saving",
                 "clip_target"):
        if not callable(getattr(comfy.supported_models.SD15, name, None)):  # a BASE like the mini family's
            broke(request, comfy_root, f"the supported-model classes no longer have {name}()")
    if not hasattr(comfy.supported_models_base, "ClipTarget") or not hasattr(comfy.supported_models_base, "BASE"):
        broke(request, comfy_root, "supported_models_base.BASE / ClipTarget are gone")
    needs_params(request, comfy_root, folder_paths.add_model_folder_path, "folder_name", "full_folder_path",
                 "is_default")
    from obclip_nodes.miniworld import comfy_family
    before = list(comfy.supported_models.models)
    comfy_family.register()
    comfy_family.register()  # idempotent
    added = [m for m in comfy.supported_models.models if m not in before]
    assert len([m for m in comfy.supported_models.models if m.__name__ == "ObCLIPMiniWorld"]) == 1, added
    assert issubclass(comfy_family.ObCLIPMiniWorldLatent, comfy.latent_formats.LatentFormat)


def test_checkpoint_loading(request, comfy_root):
    import comfy.sd
    import folder_paths
    needs_params(request, comfy_root, comfy.sd.load_state_dict_guess_config, "sd", "output_vae", "output_clip",
                 "embedding_directory")
    needs_params(request, comfy_root, comfy.sd.load_checkpoint_guess_config, "ckpt_path", "output_vae",
                 "output_clip", "embedding_directory")
    for kind in ("checkpoints", "diffusers", "embeddings"):
        try:
            folder_paths.get_folder_paths(kind)
        except KeyError:
            broke(request, comfy_root, f"folder_paths has no {kind!r} model folder")


# ---- on a live server ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from obclip_nodes.harness.servers import ComfyServer, prepare_base
    with ComfyServer("compat", prepare_base(tmp_path_factory.mktemp("compat")),
                     env={"OBCLIP_SERVER_TOKEN": "compat-token"}) as s:
        s.require_nodes("ObCLIPCandidateExpander")
        yield s


def _status(url, headers=None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_prompt_server_routes_and_middleware(request, comfy_root, live):
    from obclip_nodes.protocol import routes
    # the pack's routes are on the server, and its auth middleware guards the stock routes too
    if _status(live.url + routes.INFO, {"Authorization": "Bearer compat-token"}) != 200:
        broke(request, comfy_root, f"{routes.INFO} is not served: PromptServer.instance.routes did not take it")
    if _status(live.url + "/object_info/ObCLIPCandidateExpander") != 401:
        broke(request, comfy_root, "a request without the token was not refused: the middleware appended to "
                                   "PromptServer.instance.app.middlewares does not run")


def test_pack_loading_web_files_and_templates(request, comfy_root, live):
    auth = {"Authorization": "Bearer compat-token"}
    get = lambda path: urllib.request.urlopen(urllib.request.Request(live.url + path, headers=auth), timeout=10)
    import json
    if "/extensions/obclip/obclip.js" not in json.loads(get("/extensions").read()):
        broke(request, comfy_root, "WEB_DIRECTORY's obclip.js is not listed under /extensions")
    if not get("/extensions/obclip/docs/ObCLIPCandidateExpander.md").read().startswith(b"# "):
        broke(request, comfy_root, "the per-node help pages (web/docs/NODE.md) are not served")
    if "obclip_hybrid" not in json.loads(get("/workflow_templates").read()).get("obclip", []):
        broke(request, comfy_root, "the pack's workflows/ folder is not listed as templates")


def test_object_info_layout(request, comfy_root, live):
    import json
    req = urllib.request.Request(live.url + "/object_info", headers={"Authorization": "Bearer compat-token"})
    info = json.loads(urllib.request.urlopen(req, timeout=30).read())
    for name in ("ObCLIPCloudPartialSampler", "ObCLIPDeviceFinisher", "CheckpointLoaderSimple", "SaveImage"):
        node = info.get(name)
        if not node:
            broke(request, comfy_root, f"/object_info has no {name}")
        for key in ("input", "input_order", "output", "output_name"):
            if key not in node:
                broke(request, comfy_root, f"/object_info[{name}] has no {key!r}")
        for group, specs in node["input"].items():
            if group == "hidden":
                continue
            for inp, spec in specs.items():
                if not (isinstance(spec, list) and spec and (isinstance(spec[0], (str, list)))):
                    broke(request, comfy_root, f"{name}.{inp}: input spec {spec!r} is not [type, options]")
            if list(specs) != node["input_order"].get(group, list(specs)):
                broke(request, comfy_root, f"{name}: input_order[{group}] disagrees with input[{group}]")
    seed = info["ObCLIPCloudPartialSampler"]["input"]["required"]["seed"]
    if seed[0] != "INT" or not seed[1].get("control_after_generate"):
        broke(request, comfy_root, f"INT with control_after_generate is now {seed!r}")
    combo = info["ObCLIPCloudPartialSampler"]["input"]["required"]["sampler_name"]
    if not (isinstance(combo[0], list) or (combo[0] == "COMBO" and "options" in combo[1])):
        broke(request, comfy_root, f"a COMBO input is now {combo[:1]!r}: neither a list nor ['COMBO', {{options}}]")

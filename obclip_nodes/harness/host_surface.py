"""The declared surface: every ComfyUI internal the pack touches, where it is wrapped, and the test that checks
it on each host (tests/integration/test_host_compat.py, tests/browser/test_ui.py). docs/comfyui-internals-used.md
is the same table for people.

tests/unit/test_host_surface.py reads every import in obclip_nodes/ and fails on a ComfyUI module that no
entry declares, so a new internal cannot slip in unnoticed; each entry's test fails with a message that
names the internal and the pack file that relies on it, not as a random integration failure.
"""
from __future__ import annotations

from dataclasses import dataclass

# ComfyUI's top-level modules and packages (a pack imports them because ComfyUI puts its tree on sys.path)
HOST_MODULES = ("comfy", "comfy_api", "comfy_execution", "comfy_extras", "comfy_config", "folder_paths",
                "server", "nodes", "execution", "latent_preview", "node_helpers", "app", "utils")
TESTED_RANGE = ("0.3.75", "0.33.0")  # the ComfyUI versions every test passes on (pyproject [tool.obclip])


@dataclass(frozen=True)
class Internal:
    name: str
    what: str               # the ComfyUI internal, as the pack uses it
    modules: tuple          # host modules imported for it (the import scan matches these prefixes)
    seam: str               # the one place in the pack that touches it
    shipped: bool           # on the node pack's import path (False: demo, benches, tests only)
    test: str               # the host-compatibility test that names it when a host changes it


SURFACE = (
    Internal("V3 node API", "comfy_api.v0_0_2: io (schema, inputs, outputs, custom types, hidden), ComfyExtension, "
             "comfy_entrypoint", ("comfy_api.v0_0_2",), "obclip_nodes/nodes/v3.py", True,
             "test_host_compat.py::test_v3_node_api"),
    Internal("Sampling functions", "comfy.sample.sample_custom / prepare_noise / fix_empty_latent_channels, "
             "comfy.samplers.KSampler (SAMPLERS, SCHEDULERS, sigmas), sampler_object, calculate_sigmas, "
             "k_diffusion noise samplers, model_sampling.ModelSamplingDiscrete, latent_preview.prepare_callback",
             ("comfy.sample", "comfy.samplers", "comfy.k_diffusion", "comfy.model_sampling", "latent_preview"),
             "obclip_nodes/sampling/ (partial.py, finish.py, noise.py, schedule.py), protocol/stock.py", True,
             "test_host_compat.py::test_sampling_functions"),
    Internal("ModelPatcher wrappers", "comfy.patcher_extension.WrappersMP.OUTER_SAMPLE / DIFFUSION_MODEL, "
             "ModelPatcher.clone / add_wrapper_with_key / add_object_patch / get_model_object, "
             "model_patcher.create_model_options_clone", ("comfy.patcher_extension", "comfy.model_patcher"),
             "obclip_nodes/acceleration/patch.py", True, "test_host_compat.py::test_model_patcher_wrappers"),
    Internal("UNetModel._forward copy", "comfy.ldm.modules.diffusionmodules.openaimodel: a copy of "
             "UNetModel._forward (block skip) and its helpers forward_timestep_embed, apply_control, "
             "timestep_embedding; UNetModel built on the meta device for FLOPs",
             ("comfy.ldm.modules.diffusionmodules.openaimodel", "comfy.ops"),
             "obclip_nodes/acceleration/unet.py (costs.py builds the meta UNet)", True,
             "test_host_compat.py::test_unet_forward_copy"),
    Internal("Cross-attention swap", "comfy.ldm.modules.attention.CrossAttention (forward signature, to_q/k/v/out, "
             "heads, dim_head, attn_precision), BasicTransformerBlock.attn1/attn2, attention_pytorch",
             ("comfy.ldm.modules.attention",), "obclip_nodes/acceleration/attention.py", True,
             "test_host_compat.py::test_cross_attention_swap"),
    Internal("Hidden context: prompt_id", "comfy_execution.utils.get_executing_context().prompt_id (the id of the "
             "prompt a node runs in)", ("comfy_execution.utils",), "obclip_nodes/nodes/common.py current_prompt_id",
             True, "test_host_compat.py::test_prompt_id_context"),
    Internal("Progress and interrupt", "comfy.utils.ProgressBar, comfy.model_management.processing_interrupted / "
             "throw_exception_if_processing_interrupted", ("comfy.utils", "comfy.model_management"),
             "obclip_nodes/nodes/cloud.py", True, "test_host_compat.py::test_progress_and_interrupt"),
    Internal("PromptServer routes and middleware", "server.PromptServer.instance.routes and .app.middlewares, "
             "found through sys.modules['server'] when the pack loads", ("server",),
             "obclip_nodes/cloud_server/__init__.py install(), obclip_nodes/nodes/routes.py install()", True,
             "test_host_compat.py::test_prompt_server_routes_and_middleware"),
    Internal("Pack loading, web files, templates", "__init__.py comfy_entrypoint + WEB_DIRECTORY; "
             "/extensions/obclip/*; per-node help pages web/docs/NODE.md; workflows/ served as templates "
             "(/workflow_templates)", (), "__init__.py, web/, workflows/", True,
             "test_host_compat.py::test_pack_loading_web_files_and_templates"),
    Internal("/object_info layout", "input.required/optional as [type, options], input_order, output, output_name, "
             "COMBO as a list or ['COMBO', {options}], control_after_generate; UI workflows are generated from it",
             (), "obclip_nodes/harness/ui_workflow.py (and the validator in tests/integration/"
             "test_shipped_workflows.py)", False, "test_host_compat.py::test_object_info_layout"),
    Internal("Frontend extension API", "app.registerExtension with beforeRegisterNodeDef / nodeCreated, "
             "node.addWidget, onExecuted, onDrawForeground, setDirtyCanvas, api.fetchApi (scripts/app.js, "
             "scripts/api.js)", (), "web/obclip.js", True,
             "tests/browser/test_ui.py::test_frontend_extension_api"),
    Internal("Model family registration (demo, opt-in)", "comfy.supported_models.models (append), "
             "supported_models_base.BASE / ClipTarget, latent_formats.LatentFormat, sd1_clip.SDClipModel / "
             "SD1ClipModel / SD1Tokenizer / SDTokenizer, utils.state_dict_prefix_replace, "
             "folder_paths.add_model_folder_path",
             ("comfy.supported_models", "comfy.supported_models_base", "comfy.latent_formats", "comfy.sd1_clip",
              "folder_paths"),
             "obclip_nodes/miniworld/comfy_family.py (OBCLIP_MINIWORLD=1 only)", False,
             "test_host_compat.py::test_model_family_registration"),
    Internal("Checkpoint detection and loading", "comfy.sd.load_state_dict_guess_config (the device loader builds "
             "MODEL/CLIP/VAE through ComfyUI's own detection), comfy.sd.load_checkpoint_guess_config (what Load "
             "Checkpoint calls), folder_paths.get_folder_paths('diffusers' / 'embeddings')", ("comfy.sd",),
             "obclip_nodes/device_models/host.py", True, "test_host_compat.py::test_checkpoint_loading"),
    Internal("Lab only: training, benches, test models", "comfy.cli_args.args.cpu, comfy.utils.save_torch_file, "
             "comfy.clip_model, comfy.taesd, comfy.sdxl_clip, comfy.model_detection, stock node classes (nodes.*)",
             ("comfy.cli_args", "comfy.clip_model", "comfy.taesd", "comfy.sdxl_clip", "comfy.model_detection",
              "nodes"),
             "obclip_nodes/harness, bench, miniworld/train.py", False,
             "every integration test (the stock loader is how the tests load models)"),
)


def internal_for(module: str) -> Internal | None:
    """The entry that declares this host module (longest matching prefix), or None."""
    best = None
    for item in SURFACE:
        for m in item.modules:
            if (module == m or module.startswith(m + ".")) and (best is None or len(m) > len(best[0])):
                best = (m, item)
    return best[1] if best else None

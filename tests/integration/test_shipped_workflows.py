"""Every shipped workflow against a live ComfyUI's /object_info: API twins validate (class types, inputs, links,
combo values except model names, ranges), UI files equal their generated form, all are templates, and the
pack's browser files (extension, per-node help pages) and routes are served."""
from __future__ import annotations

import json
import urllib.request

import pytest

from obclip_nodes.harness.host import REPO
from obclip_nodes.harness.servers import ComfyServer, prepare_base

pytestmark = pytest.mark.servers

API_DIR = REPO / "workflows" / "api"
API_FILES = sorted(API_DIR.glob("*.json"))
MODEL_COMBOS = {"ckpt_name", "vae_name", "lora_name", "unet_name", "clip_name", "control_net_name",
                "model_folder", "image"}  # the user's own files
EXPECTED = {"obclip_hybrid", "obclip_hybrid_bk_sdm", "obclip_sdxl_koala", "obclip_lcm_sdxl_koala",
            "obclip_local_simulation", "obclip_cloud_operator", "obclip_miniworld", "obclip_device_controlnet",
            "obclip_device_custom_sampler", "obclip_two_people"}


def validate(api: dict, info: dict) -> list[str]:
    """Problems that would make ComfyUI refuse the graph (or show a broken node), as readable strings."""
    errors = []
    for nid, node in api.items():
        ct = node.get("class_type")
        if ct not in info:
            errors.append(f"node {nid}: unknown class_type {ct!r}")
            continue
        spec = info[ct]["input"]
        req, opt = spec.get("required", {}), spec.get("optional", {})
        inputs = node.get("inputs", {})
        for name in req:
            if name not in inputs:
                errors.append(f"node {nid} ({ct}): required input {name!r} missing")
        for name, value in inputs.items():
            s = req.get(name) or opt.get(name)
            if s is None:
                errors.append(f"node {nid} ({ct}): unknown input {name!r}")
                continue
            kind, opts = s[0], (s[1] if len(s) > 1 else {}) or {}
            if isinstance(value, list):  # a link
                src, slot = value
                if src not in api:
                    errors.append(f"node {nid} ({ct}).{name}: link to missing node {src}")
                    continue
                outs = info[api[src]["class_type"]]["output"]
                if slot >= len(outs):
                    errors.append(f"node {nid} ({ct}).{name}: link to output {slot} of {src}, which has {len(outs)}")
                    continue
                accepted = {"COMBO"} if isinstance(kind, list) else set(str(kind).split(","))
                if outs[slot] not in accepted and "*" not in accepted:
                    errors.append(f"node {nid} ({ct}).{name}: {outs[slot]} linked into {sorted(accepted)}")
                continue
            if isinstance(kind, list) or kind == "COMBO":
                options = kind if isinstance(kind, list) else opts.get("options", [])
                if name not in MODEL_COMBOS and value not in options:
                    errors.append(f"node {nid} ({ct}).{name}: {value!r} is not one of {options}")
            elif kind == "INT" or kind == "FLOAT":
                if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                        (kind == "INT" and not isinstance(value, int)):
                    errors.append(f"node {nid} ({ct}).{name}: {value!r} is not {kind}")
                elif ("min" in opts and value < opts["min"]) or ("max" in opts and value > opts["max"]):
                    errors.append(f"node {nid} ({ct}).{name}: {value} outside [{opts.get('min')}, {opts.get('max')}]")
            elif kind == "BOOLEAN" and not isinstance(value, bool):
                errors.append(f"node {nid} ({ct}).{name}: {value!r} is not BOOLEAN")
            elif str(kind).split(",")[0] == "STRING" and not isinstance(value, str):
                errors.append(f"node {nid} ({ct}).{name}: {value!r} is not STRING")
    return errors


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ComfyServer("workflows", prepare_base(tmp_path_factory.mktemp("workflows"))) as s:
        s.require_nodes("ObCLIPCandidateExpander", "ObCLIPServerSampler")
        yield s, s.get("/object_info")


def test_the_expected_workflows_ship_in_both_formats():
    assert {p.stem for p in API_FILES} == EXPECTED
    assert {p.stem for p in (REPO / "workflows").glob("*.json")} == EXPECTED


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_api_workflow_validates_against_live_object_info(server, path):
    _, info = server
    errors = validate(json.loads(path.read_text()), info)
    assert not errors, "\n".join(errors)


def test_the_validator_catches_what_it_should(server):
    _, info = server
    api = json.loads((API_DIR / "obclip_hybrid.json").read_text())
    api["4"]["inputs"]["sampler_name"] = "no-such-sampler"
    api["6"]["inputs"]["schedule"] = "sigma matched"          # a near miss of a combo value
    del api["5"]["inputs"]["selection"]
    api["7"]["inputs"]["vae"] = ["1", 7]
    api["99"] = {"class_type": "NoSuchNode", "inputs": {}}
    api["1"]["inputs"]["ckpt_name"] = "whatever-the-user-has.safetensors"  # model names are exempt
    errors = "\n".join(validate(api, info))
    for needle in ("no-such-sampler", "sigma matched", "'selection' missing", "output 7", "NoSuchNode"):
        assert needle in errors
    assert "whatever-the-user-has" not in errors


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_ui_workflow_matches_its_generated_form(server, path):
    from obclip_nodes.harness.ui_workflow import api_to_ui
    _, info = server
    ui = REPO / "workflows" / path.name
    assert json.loads(ui.read_text()) == api_to_ui(json.loads(path.read_text()), info), \
        f"regenerate: python -m obclip_nodes.harness.ui_workflow workflows/api/{path.name} workflows/{path.name}"


def test_all_are_templates_and_the_browser_files_are_served(server):
    s, info = server
    assert set(s.get("/workflow_templates").get("obclip", [])) == EXPECTED
    assert "/extensions/obclip/obclip.js" in s.get("/extensions")
    for node in (n for n in info if n.startswith("ObCLIP")):  # the frontend's help-page convention
        with urllib.request.urlopen(f"{s.url}/extensions/obclip/docs/{node}.md", timeout=10) as r:
            assert r.read().decode().startswith("# ")


def test_live_preview_and_probe_routes(server):
    s, _ = server
    status, res = s.post("/obclip/expand", {"prompt": "a photo of a young woman", "preset": "default"})
    assert status == 200 and res["n"] >= 4 and {"age", "gender"} <= set(res["attributes"]), res
    assert "a photo of a young woman" in res["candidates"]
    status, res = s.post("/obclip/expand", {"prompt": "a photo", "max_candidates": 0})
    assert status == 400 and "max_candidates must be a whole number from 1 to 256" in json.dumps(res), res
    res = s.get("/obclip/probe?url=" + s.url)
    (me,) = res["servers"]
    assert me["reachable"] and me["pack"] and me["queue"] == 0 and "same ComfyUI" in me.get("warning", "")
    res = s.get("/obclip/probe?url=http://127.0.0.1:9")  # nothing listens on the discard port
    assert res["servers"][0]["reachable"] is False and res["servers"][0]["error"]

"""Shared fixtures. Plain-logic tests need nothing; `comfy` tests import ComfyUI in-process on the
CPU; `servers` tests start real ComfyUI servers on loopback.

Models loaded in-process (sd15_models, sdxl_models) and the SD1.5 pair's cloud and device servers
(sd15_servers) are made once per session and shared by every module that asks for them; the modules that use
the same ones run next to each other (pytest_collection_modifyitems below), and they are freed (servers
stopped) right after their last user finished (pytest_runtest_teardown), so two model sets never sit in memory
together and the servers other modules start do not share memory with them."""
from __future__ import annotations

import gc

import pytest

# fixtures whose value is shared across modules and freed after the last module that uses it
_SHARED: dict[str, object] = {}
_CLOSE: dict[str, object] = {}  # how to release a shared value (a server is stopped), beyond dropping it
_NEEDED_FROM: dict[str, frozenset] = {}  # test id -> the shared fixtures its module or any later module uses
SHARED_ACROSS_MODULES = ("sd15_models", "sdxl_models", "sd15_servers")


def _module_of(item) -> str:
    return item.nodeid.split("::")[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Modules that use the same shared in-process models run one after another (stable otherwise), and each
    test records which shared models its module or a later one still needs, so the rest can be freed at each
    module's end. Module granularity: a test may also ask for the models by name (request.getfixturevalue)."""
    uses: dict[str, set] = {}
    for item in items:
        uses.setdefault(_module_of(item), set()).update(
            n for n in SHARED_ACROSS_MODULES if n in getattr(item, "fixturenames", ()))
    first_module_of: dict[str, int] = {}
    rank: dict[str, tuple] = {}
    for i, (module, names) in enumerate(uses.items()):
        key = first_module_of.setdefault(sorted(names)[0], i) if names else i
        rank[module] = (key, i)
    items.sort(key=lambda it: rank[_module_of(it)])
    _NEEDED_FROM.clear()
    needed: frozenset = frozenset()
    for item in reversed(items):
        needed = needed | uses[_module_of(item)]
        _NEEDED_FROM[item.nodeid] = needed
    if any(item.get_closest_marker("servers") for item in items):
        from obclip_nodes.harness import servers
        servers.prestart_forker()  # its imports run beside the session's first, single-threaded steps


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the module's own fixtures are torn down first
    if nextitem is not None and _module_of(nextitem) == _module_of(item):
        return
    still = _NEEDED_FROM.get(nextitem.nodeid, frozenset()) if nextitem is not None else frozenset()
    _free([n for n in list(_SHARED) if n not in still])


def pytest_sessionfinish(session, exitstatus):
    _free(list(_SHARED))  # what a stopped or interrupted session still holds: servers are stopped by PID


def _free(names) -> None:
    for name in names:
        value = _SHARED.pop(name)
        close = _CLOSE.pop(name, None)
        if close is not None:
            close(value)
    if names:
        gc.collect()


def _shared(name: str, load, close=None):
    if name not in _SHARED:
        _SHARED[name] = load()
        if close is not None:
            _CLOSE[name] = close
    return _SHARED[name]


def pytest_configure(config):
    """oneDNN and NNPACK convolutions off and the batched convolution on, here and in every server the harness
    starts: at the tests' 4x4 latents oneDNN spends most of a UNet call re-laying out weights, NNPACK (what
    PyTorch picks without oneDNN from 16 rows on) is four times slower than the plain path, and the plain
    path reads every weight once per image (obclip_nodes/harness/comfy_main.py and batched_conv.py have the
    numbers)."""
    import torch
    from obclip_nodes.harness import servers
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    servers.ONEDNN_CONVOLUTIONS = False
    from obclip_nodes.harness import batched_conv
    batched_conv.install()


@pytest.fixture(scope="session")
def comfy_root():
    from obclip_nodes.harness.host import import_comfy
    root = import_comfy()
    import comfy.utils
    comfy.utils.PROGRESS_BAR_ENABLED = False
    from obclip_nodes.harness import encode_memo
    encode_memo.install()  # each prompt encoded once per text encoder (harness/encode_memo.py says why)
    return root


@pytest.fixture(scope="session")
def sd15_pair():
    """(cloud, device) single files: SD1.5 and BK-SDM-Small, published architectures, seeded random weights."""
    from obclip_nodes.harness.pairs import SD15_PAIR, ensure
    return ensure(SD15_PAIR)


@pytest.fixture(scope="session")
def sdxl_pair():
    """(cloud, device) single files of the SDXL family: Segmind Vega and KOALA-700M (harness/pairs.py says why).
    Built on first use (about 6.7 GB): the suite's own SDXL tests load these models in memory (sdxl_models)."""
    from obclip_nodes.harness.pairs import SDXL_PAIR, ensure
    return ensure(SDXL_PAIR)


def _load(paths):
    import comfy.sd
    return tuple(comfy.sd.load_checkpoint_guess_config(str(p))[:3] for p in paths)


def _load_in_memory(names):
    """The SDXL family's test models, built in memory (never written: they would double the test models' disk)
    and loaded by ComfyUI's load_state_dict_guess_config, which is what load_checkpoint_guess_config runs on a
    file's tensors. Components the models have in common are generated once."""
    import comfy.sd
    from obclip_nodes.harness import test_models
    share: dict = {}
    out = []
    for name in names:
        sd = test_models.state_dict(name, share)
        out.append(comfy.sd.load_state_dict_guess_config(sd)[:3])
        del sd
        gc.collect()
    share.clear()
    gc.collect()
    return tuple(out)


@pytest.fixture(scope="module")
def sd15_models(comfy_root, sd15_pair):
    """(cloud, device) as loaded by ComfyUI's own checkpoint loader: (model, clip, vae) each. Loaded once for
    every module that uses it (they run next to each other) and freed after the last one: the pair holds about
    7 GB in float32, and the modules that start servers load their own copies there."""
    return _shared("sd15_models", lambda: _load(sd15_pair))


@pytest.fixture(scope="module")
def sd15_servers(tmp_path_factory, sd15_pair):
    """The SD1.5 pair's cloud and device ComfyUI servers (tests/integration/sd15_servers.py: what they list, and
    how a module reads only its own part of the cloud's history), shared by the end-to-end modules."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent / "integration"))
    import sd15_servers as lab
    return _shared("sd15_servers", lambda: lab.start(tmp_path_factory.mktemp("sd15-servers"), sd15_pair),
                   close=lab.stop)


@pytest.fixture(scope="module")
def sdxl_models(comfy_root):
    """Like sd15_models for the SDXL family, Segmind Vega and KOALA-700M (about 13 GB in float32), built in
    memory (_load_in_memory): only tests/integration/test_sdxl_family.py uses it."""
    from obclip_nodes.harness.pairs import SDXL_PAIR
    return _shared("sdxl_models", lambda: _load_in_memory(SDXL_PAIR))


def shipped_checkpoint_names() -> set[str]:
    """Every checkpoint name the shipped API workflows use (Load Checkpoint and the cloud's checkpoint)."""
    import json
    from obclip_nodes.harness.host import REPO
    names = set()
    for path in (REPO / "workflows" / "api").glob("*.json"):
        for node in json.loads(path.read_text()).values():
            for key in ("ckpt_name", "cloud_checkpoint"):
                if isinstance(node["inputs"].get(key), str):
                    names.add(node["inputs"][key])
    return names


# The test model standing in for each checkpoint a shipped workflow names (same family, so the frontend
# and the server see an installed model of the right kind). The mini world's files ship with the pack.
WORKFLOW_MODEL_FAMILY = {
    "v1-5-pruned-emaonly.safetensors": "sd15", "bk-sdm-small.safetensors": "bk-sdm-small",
    "sd_xl_base_1.0.safetensors": "sdxl-cloud", "lcm-sdxl.safetensors": "sdxl-cloud",
    "koala-700m.safetensors": "koala-700m",
}
SHIPPED_WITH_THE_PACK = {"obclip-mini-cloud.safetensors", "obclip-mini-device.safetensors"}
# diffusers folders (models/diffusers/NAME) the shipped workflows load with the ObCLIP Device Model Loader
WORKFLOW_DIFFUSERS = {"bk-sdm-small": "bk-sdm-small"}


def shipped_diffusers_names() -> set[str]:
    import json
    from obclip_nodes.harness.host import REPO
    return {node["inputs"]["model_folder"] for path in (REPO / "workflows" / "api").glob("*.json")
            for node in json.loads(path.read_text()).values() if isinstance(node["inputs"].get("model_folder"), str)}


@pytest.fixture(scope="session")
def workflow_diffusers():
    """{folder name a shipped workflow uses: the test model's diffusers folder}."""
    from obclip_nodes.harness import test_models
    unknown = shipped_diffusers_names() - set(WORKFLOW_DIFFUSERS)
    assert not unknown, f"add {sorted(unknown)} to tests/conftest.py WORKFLOW_DIFFUSERS"
    return {name: test_models.ensure_diffusers(model) for name, model in WORKFLOW_DIFFUSERS.items()}


@pytest.fixture(scope="session")
def workflow_checkpoints(sd15_pair):
    """{name a shipped workflow uses: a test model of that architecture (the SDXL-family cloud for an SDXL)}.

    The SD1.x names are the real test models. The SDXL-family names are listing stand-ins
    (test_models.listing_stand_in: the architecture's keys and shapes, zero weights, a sparse file): the one
    user of this fixture, the browser tests, lists them in the frontend and never queues an SDXL workflow. A
    test that runs an SDXL workflow on a server uses sdxl_pair."""
    from obclip_nodes.harness import test_models
    from obclip_nodes.harness.pairs import SDXL_PAIR
    families = {"sd15": sd15_pair[0], "bk-sdm-small": sd15_pair[1],
                "sdxl-cloud": test_models.listing_stand_in(SDXL_PAIR[0]),
                "koala-700m": test_models.listing_stand_in(SDXL_PAIR[1])}
    unknown = shipped_checkpoint_names() - set(WORKFLOW_MODEL_FAMILY) - SHIPPED_WITH_THE_PACK
    assert not unknown, f"add the family of {sorted(unknown)} to tests/conftest.py WORKFLOW_MODEL_FAMILY"
    return {name: families[fam] for name, fam in WORKFLOW_MODEL_FAMILY.items()}

"""Every ComfyUI module the pack imports is declared in the host surface (obclip_nodes/harness/host_surface.py)
and in its table for people (docs/comfyui-internals-used.md)."""
from __future__ import annotations

import ast

from obclip_nodes.harness.host import REPO
from obclip_nodes.harness.host_surface import HOST_MODULES, SURFACE, TESTED_RANGE, internal_for


def host_imports() -> dict[str, set[str]]:
    """{host module: {pack files importing it}} for every absolute import of a ComfyUI module in obclip_nodes/."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "obclip_nodes").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module + "." + a.name if node.module in ("comfy", "comfy.ldm") else node.module
                         for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in HOST_MODULES:
                    found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_scan_sees_the_known_internals():
    found = host_imports()
    assert "comfy.ldm.modules.diffusionmodules.openaimodel" in found      # the UNet forward copy
    assert "comfy_execution.utils" in found                               # prompt_id
    assert "comfy_api.v0_0_2" in found and found["comfy_api.v0_0_2"] == {"obclip_nodes/nodes/v3.py"}


def test_every_imported_comfyui_module_is_declared():
    undeclared = {m: sorted(files) for m, files in host_imports().items() if internal_for(m) is None}
    assert not undeclared, ("these ComfyUI modules are used but not declared in "
                            f"obclip_nodes/harness/host_surface.py (add an entry with its seam and test): {undeclared}")


def test_the_node_api_is_imported_in_one_place():
    users = {f for m, files in host_imports().items() if m.startswith("comfy_api") for f in files}
    assert users == {"obclip_nodes/nodes/v3.py"}, f"import io / ComfyExtension from obclip_nodes/nodes/v3.py: {users}"


def test_the_table_for_people_lists_every_internal_and_the_tested_range():
    doc = (REPO / "docs" / "comfyui-internals-used.md").read_text()
    missing = [i.name for i in SURFACE if f"| {i.name} |" not in doc]
    assert not missing, f"docs/comfyui-internals-used.md lacks rows for {missing}"
    for i in SURFACE:
        assert i.test.split("::")[-1].split(" ")[0] in doc, i.name
    assert all(v in doc for v in TESTED_RANGE)
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'comfyui-tested = ["{TESTED_RANGE[0]}", "{TESTED_RANGE[1]}"]' in pyproject

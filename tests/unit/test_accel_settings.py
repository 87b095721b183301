"""Acceleration settings: strict parsing, validation, and an honest applied list."""
from __future__ import annotations

import pytest

from obclip_nodes.acceleration import AccelerationSettings
from obclip_nodes.acceleration.settings import IMPLEMENTED, STRATEGIES


def test_every_strategy_is_implemented_and_reported_as_applied():
    assert IMPLEMENTED == frozenset(STRATEGIES)
    s = AccelerationSettings.from_dict({"batch_reuse": True, "block_skip": True})
    assert s.requested == ("batch_reuse", "block_skip") and s.applied == s.requested
    assert AccelerationSettings.all_on().applied == STRATEGIES
    assert AccelerationSettings().applied == ()


@pytest.mark.parametrize("raw,msg", [({"turbo": True}, "unknown acceleration"),
                                     ({"uncond_share": 1}, "true or false"),
                                     ({"refresh_every": 0}, "refresh_every"),
                                     ({"pivot_index": -1}, "pivot_index"),
                                     ({"skip_branch": True}, "skip_branch"),
                                     ({"skip_mode": "fast"}, "skip_mode"),
                                     ({"skip_mode": 3}, "skip_mode")])
def test_bad_settings_are_refused(raw, msg):
    with pytest.raises(ValueError, match=msg):
        AccelerationSettings.from_dict(raw)


def test_round_trip_is_canonical():
    s = AccelerationSettings.all_on(cache_point=4, skip_point=6, skip_mode="deepcache", skip_branch=1)
    assert AccelerationSettings.from_dict(s.to_dict()) == s


def test_step_schedule_of_the_strategies():
    from obclip_nodes.acceleration.state import RunState
    st = RunState(AccelerationSettings.all_on(cache_point=4, skip_point=6, refresh_every=3), 6)
    use, reuse, skip = [], [], []
    for step in range(12):
        st.step = step
        use.append(st.attn_cache_use())
        reuse.append(st.reuse_active())
        skip.append(st.block_skip_active())
    assert reuse == [True] * 4 + [False] * 8
    # cached from r on, refreshed every R steps after r (steps 7 and 10 recompute)
    assert use == [False] * 4 + [True, True, True, False, True, True, False, True]
    assert skip == [False] * 6 + [True] * 6
    assert st.pivot_row(6) == 0
    st2 = RunState(AccelerationSettings(pivot_index=3), 6)
    assert st2.pivot_row(6) == 3 and st2.pivot_row(1) == 0


def test_deepcache_interval_recomputes_every_m_steps_after_the_skip_point():
    from obclip_nodes.acceleration.state import RunState

    def schedule(**kw):
        st = RunState(AccelerationSettings(block_skip=True, **kw), 6)
        out = []
        for step in range(10):
            st.step = step
            out.append((st.block_skip_active(), st.block_store()))
        return out
    # s = 3, M = 2: steps 2, 4, 6, 8 recompute and store; 3, 5, 7, 9 reuse
    got = schedule(skip_point=3, skip_refresh_every=2)
    assert [a for a, _ in got] == [False, False, False, True, False, True, False, True, False, True]
    assert [b for _, b in got] == [False, False] + [True] * 8  # every step from s-1 may store when it computes
    # M = 0 (default): the paper's form, reused from s on with no refresh; M = 1: never reused
    assert [a for a, _ in schedule(skip_point=3)] == [False] * 3 + [True] * 7
    assert not any(a for a, _ in schedule(skip_point=3, skip_refresh_every=1))
    with pytest.raises(ValueError, match="skip_refresh_every"):
        AccelerationSettings.from_dict({"skip_refresh_every": -1})


def test_presets_are_the_documented_settings():
    """The presets in the node are the ones docs/acceleration-frontier.json measured (re-run
    `./run.sh bench frontier --out docs/acceleration-frontier` after changing one)."""
    import json
    from pathlib import Path
    from obclip_nodes.acceleration.settings import PRESET_NAMES, PRESETS
    assert PRESET_NAMES == ("exact", "balanced", "fastest", "custom")
    assert PRESETS["exact"] == {"uncond_dedup": True}
    assert AccelerationSettings.preset("exact").applied == ("uncond_dedup",)
    doc = json.loads((Path(__file__).resolve().parents[2] / "docs" / "acceleration-frontier.json").read_text())
    documented = {p["name"]: p for p in doc["presets"]}
    assert list(documented) == list(PRESETS)
    for name in PRESETS:
        assert documented[name]["settings"] == AccelerationSettings.preset(name).to_dict(), name
        for key in ("flops_ratio", "fd", "fd_unaccelerated", "attr_acc", "attr_acc_unaccelerated"):
            assert isinstance(documented[name][key], float), (name, key)
        assert documented[name]["wall_ratio"] is None or documented[name]["wall_ratio"] > 0  # None: not timed
    # exact changes no number: the documented run measured the same quality and zero hand-off drift
    assert documented["exact"]["fd"] == documented["exact"]["fd_unaccelerated"]
    assert documented["exact"]["attr_acc"] == documented["exact"]["attr_acc_unaccelerated"]
    exact_point = next(p for p in doc["points"] if p["name"] == "preset:exact")
    assert exact_point["real_row_handoff_rel_drift_max"] == 0.0
    # faster presets skip more: exact < balanced < fastest in counted FLOPs skipped
    r = [documented[n]["flops_ratio"] for n in ("exact", "balanced", "fastest")]
    assert r[0] > r[1] > r[2]
    with pytest.raises(ValueError, match="unknown acceleration preset"):
        AccelerationSettings.preset("turbo")


def test_presets_never_name_a_real_candidate():
    """A preset is public data: no field may hold a per-request or per-candidate value."""
    from obclip_nodes.acceleration.settings import PRESETS
    for name, raw in PRESETS.items():
        s = AccelerationSettings.preset(name)
        assert s.pivot_index == 0 and "pivot_index" not in raw, name


def test_the_node_help_page_quotes_the_measured_presets():
    """web/docs/ObCLIPCacheAccelerator.md's table says what docs/acceleration-frontier.json measured."""
    import json
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    doc = json.loads((root / "docs" / "acceleration-frontier.json").read_text())
    page = (root / "web" / "docs" / "ObCLIPCacheAccelerator.md").read_text()
    for p in doc["presets"]:
        row = re.search(rf"^\| {p['name']} \| ([0-9.]+)× \| ([0-9.]+)× \| (.*?) \|", page, re.M)
        assert row, p["name"]
        assert float(row[1]) == round(p["wall_ratio"], 2) and float(row[2]) == round(p["flops_ratio"], 2), row[0]
        fd_ratio = p["fd"] / p["fd_unaccelerated"]
        if p["name"] == "exact":
            assert fd_ratio == 1.0 and "unchanged" in row[3]
        else:
            assert row[3].startswith(f"{fd_ratio:.2f}×"), (row[0], fd_ratio)

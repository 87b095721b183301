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

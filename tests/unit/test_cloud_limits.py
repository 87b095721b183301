"""Plain logic of a shared cloud (issue 23): round-robin pick, per-tenant bounds, store share, refusal
rate, the retry loop, and the defaults the docs state. The claims themselves are shown on real servers
in tests/integration/test_cloud_fairness.py and test_load_balancer.py."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from obclip_nodes import config
from obclip_nodes.cloud_server.auth import CLIENT, Principal
from obclip_nodes.cloud_server.limits import RejectLimiter
from obclip_nodes.cloud_server.results import ResultStore
from obclip_nodes.cloud_server.scheduler import RoundRobin
from obclip_nodes.cloud_server.tenants import Tenancy
from obclip_nodes.remote import failover
from obclip_nodes.remote.endpoints import Endpoint
from obclip_nodes.remote.transport import CloudError, CloudUnreachable, CloudWorkerLost

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "deploy-cloud.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("env, default", [
    ("OBCLIP_SERVER_MAX_QUEUED_PER_TENANT", 32), ("OBCLIP_SERVER_MAX_IDS_PER_TENANT", 100_000),
    ("OBCLIP_SERVER_MAX_REJECTS_PER_MIN", 120), ("OBCLIP_SERVER_RESULT_TENANT_MB", 512.0),
    ("OBCLIP_SERVER_RESULT_MAX_MB", 2048.0), ("OBCLIP_SERVER_RESULT_TTL_S", 600.0), ("OBCLIP_CLOUD_RETRIES", 2)])
def test_the_defaults_are_the_ones_the_deploy_guide_states(env, default):
    s = config.settings({})
    assert s.values[env[len("OBCLIP_"):].lower()] == default
    row = next((line for line in DOCS.splitlines() if f"`{env}`" in line and line.strip().startswith("|")), None)
    assert row is not None, f"docs/deploy-cloud.md has no table row for {env}"
    shown = f"{default:,}" if isinstance(default, int) else f"{default:g}"
    assert re.search(rf"\|\s*{re.escape(shown)}\s*\|", row), (row, shown)


def items(*owners_numbers):
    return [(n, f"p{n}", {}, {}, []) for _, n in owners_numbers]


def test_round_robin_takes_the_least_recently_served_tenant():
    owner = {}
    queue = []
    for n in range(10):
        owner[f"p{n}"] = "heavy"
        queue.append((n, f"p{n}", {}, {}, []))
    rr = RoundRobin(owner.get)
    ran = [queue.pop(rr.pick(queue))[1]]          # heavy's first
    owner["p100"] = "light"
    queue.append((100, "p100", {}, {}, []))
    ran.append(queue.pop(rr.pick(queue))[1])      # light goes next, ahead of heavy's other 9
    ran += [queue.pop(rr.pick(queue))[1] for _ in range(len(queue))]
    assert ran[:3] == ["p0", "p100", "p1"] and ran[3:] == [f"p{n}" for n in range(2, 10)]


def test_the_operators_front_of_queue_still_goes_first():
    owner = {"a": "alice", "b": "bob"}
    rr = RoundRobin(owner.get)
    queue = [(1, "a", {}, {}, []), (2, "b", {}, {}, []), (-5, "op", {}, {}, [])]
    assert queue[rr.pick(queue)][1] == "op"


def test_ownership_is_recorded_only_when_committed_and_bounded_per_tenant():
    t = Tenancy(max_ids=3)
    assert t.reserve_prompt("x", "alice") and not t.reserve_prompt("x", "bob")  # held while submitted
    t.release_prompt("x")                                                     # refused: nothing kept
    assert t.owner("x") is None and t.remembered() == (0, 0)
    assert t.claim_prompt("victim", "bob")
    for i in range(10):
        assert t.claim_prompt(f"a{i}", "alice")
    assert t.owner("victim") == "bob" and t.owner("a0") is None and t.owner("a9") == "alice"
    assert not t.claim_prompt("victim", "alice")
    bob, alice = Principal(CLIENT, "bob"), Principal(CLIENT, "alice")
    assert t.claim_socket("bob-socket", bob)
    for i in range(10):
        t.claim_socket(f"alice-socket-{i}", alice)
    assert not t.claim_socket("bob-socket", alice) and t.socket_tenant("bob-socket") == "bob"


def test_live_counts_count_a_submitted_prompt_once():
    t = Tenancy()
    t.reserve_prompt("p1", "alice")
    t.claim_prompt("p2", "alice")
    assert t.live_counts(([], [(1, "p1"), (2, "p2")])) == {"alice": 2}
    assert t.live_counts(([], [])) == {"alice": 1}   # p1 is being submitted


def test_a_tenant_over_its_store_share_evicts_only_its_own_oldest():
    store = ResultStore(ttl_s=60, max_bytes=10_000, tenant_bytes=250)
    store.put("b1", b"b" * 100, "kb", "bob", share=True)
    for i in range(5):
        store.put(f"a{i}", b"a" * 100, "ka", "alice", share=True)
    assert store.held() == {"bob": 100, "alice": 200}
    assert [p for p in ("a0", "a1", "a2", "a3", "a4") if p in store._items] == ["a3", "a4"]
    with pytest.raises(ValueError, match="OBCLIP_SERVER_RESULT_TENANT_MB"):
        store.put("big", b"x" * 300, "ka", "alice", share=True)


def test_over_the_whole_store_the_biggest_holder_gives_up_its_oldest():
    store = ResultStore(ttl_s=60, max_bytes=400)
    store.put("b1", b"b" * 100, "kb", "bob")
    for i in range(4):
        store.put(f"a{i}", b"a" * 100, "ka", "alice")
    assert "b1" in store._items and "a0" not in store._items and store.held() == {"bob": 100, "alice": 300}


def test_refusals_beyond_the_rate_are_answered_with_a_wait():
    r = RejectLimiter(per_min=3)
    for _ in range(3):
        assert r.wait_s("alice") == 0
        r.charge("alice")
    assert 0 < r.wait_s("alice") <= 20 and r.wait_s("bob") == 0


def run_failover(outcomes, retries=2):
    """outcomes: per attempt, an exception to raise or a value to return."""
    calls = []
    eps = [Endpoint("http://a:1")]

    async def attempt(ep):
        calls.append(ep.base)
        o = outcomes[len(calls) - 1]
        if isinstance(o, Exception):
            raise o
        return o

    async def ranker(eps):
        return eps, [], {}
    out = asyncio.run(failover.run_with_failover(eps, retries, attempt, ranker, pause_s=0.001))
    return out, calls


def test_a_run_lost_with_its_worker_is_retried_a_bounded_number_of_times():
    out, calls = run_failover([CloudWorkerLost("lost 1"), CloudWorkerLost("lost 2"), "ok"])
    assert out.result == "ok" and [m for _, m in out.retried] == ["lost 1", "lost 2"] and len(calls) == 3
    with pytest.raises(CloudError, match=r"lost with its worker 3 time\(s\).*OBCLIP_CLOUD_RETRIES=2.*lost 3"):
        run_failover([CloudWorkerLost("lost 1"), CloudWorkerLost("lost 2"), CloudWorkerLost("lost 3")])


def test_an_unreachable_server_is_not_retried():
    with pytest.raises(CloudUnreachable, match="refused") as e:
        run_failover([CloudUnreachable("refused"), "never"])
    assert not isinstance(e.value, CloudWorkerLost)
    with pytest.raises(CloudError, match="rejected"):
        run_failover([CloudError("rejected"), "never"])


def test_a_balancer_503_is_a_lost_worker_and_a_comfyui_503_is_not():
    from obclip_nodes.remote.transport import balancer_error
    ep = Endpoint("http://lb:80")
    lost = balancer_error(ep, "POST", "/prompt", 503, b"<html><body><h1>503 Service Unavailable</h1>")
    assert isinstance(lost, CloudWorkerLost) and "load balancer" in str(lost) and "ComfyUI server?" not in str(lost)
    assert balancer_error(ep, "POST", "/prompt", 503, b'{"error": {"message": "ObCLIP server: set X"}}') is None
    assert balancer_error(ep, "GET", "/history/x", 404, b"") is None


def test_own_host_refuses_a_rebound_name(comfy_root):
    from obclip_nodes.nodes.routes import own_host
    assert own_host("127.0.0.1:8188", any_host=False) and own_host("localhost:8188", any_host=False)
    assert own_host("[::1]:8188", any_host=False)
    assert not own_host("evil.example:8188", any_host=False) and not own_host("evil.example", any_host=True)
    assert own_host("192.168.1.5:8188", any_host=True) and not own_host("192.168.1.5:8188", any_host=False)


def test_lexicon_path_is_limited_to_the_lexicon_folder_with_one_message(comfy_root, tmp_path, monkeypatch):
    from obclip_nodes.nodes.routes import lexicon_in_folder
    (tmp_path / "lex").mkdir()
    (tmp_path / "lex" / "mine.json").write_text("{}")
    (tmp_path / "outside.json").write_text("{}")
    monkeypatch.delenv("OBCLIP_LEXICON_DIR", raising=False)
    messages = set()
    for path in ("mine.json", str(tmp_path / "outside.json")):
        with pytest.raises(ValueError) as e:
            lexicon_in_folder(path)
        messages.add(str(e.value))
    monkeypatch.setenv("OBCLIP_LEXICON_DIR", str(tmp_path / "lex"))
    assert lexicon_in_folder("mine.json") == (tmp_path / "lex" / "mine.json").resolve()
    for path in ("../outside.json", str(tmp_path / "outside.json"), "missing.json", "/etc/passwd", "/etc/hostname",
                 "."):
        with pytest.raises(ValueError) as e:
            lexicon_in_folder(path)
        messages.add(str(e.value))
    assert len(messages) == 1 and "OBCLIP_LEXICON_DIR" in messages.pop()

"""Two cloud workers behind Debian's haproxy, started here, with 8 concurrent clients of two tenants:
every result arrives at the client that asked for it, and results stay bound to their requester.
Throughput numbers live in the bench (python -m obclip_nodes.bench balancer), not here."""
from __future__ import annotations

import asyncio
import json

import pytest

from obclip_nodes.harness.balancer import HAProxy, many_clients, mini_plans
from obclip_nodes.harness.servers import ComfyServer, prepare_base, start_together

pytestmark = pytest.mark.servers
OPERATOR, ALICE, BOB = "lb-operator-0123456789abcdef", "lb-alice-0123456789abcdef", "lb-bob-0123456789abcdef"
CLIENTS, RUNS = 8, 2


class Worker(ComfyServer):
    def get(self, path, timeout=10.0):
        import urllib.request
        r = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {OPERATOR}"})
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """Two workers for both tests (the second kills one, so it runs last): each test reads only the history
    its own runs added."""
    root = tmp_path_factory.mktemp("lb-workers")
    tenants = root / "tenants.json"
    tenants.write_text(json.dumps({"operator": OPERATOR, "clients": {"alice": ALICE, "bob": BOB}}))
    # one CPU thread per worker (one GPU per worker in production); two workers share this machine
    env = {"OBCLIP_SERVER_TENANTS_FILE": str(tenants), "OBCLIP_MINIWORLD": "1", "OMP_NUM_THREADS": "1"}
    pair = [Worker(f"w{i}", prepare_base(root / f"w{i}"), env=env) for i in range(2)]
    try:
        start_together(*pair)
        yield pair
    finally:
        for w in pair:
            w.stop()


def test_two_workers_behind_haproxy_every_result_arrives(workers, tmp_path, monkeypatch):
    before = [len(w.get("/history")) for w in workers]
    with HAProxy([w.url for w in workers], tmp_path) as lb:
        # each tenant's token is scoped to the balancer's URL; the two tenants run side by side
        plan = mini_plans(CLIENTS, RUNS)
        # two tenants side by side; each token is scoped to its own name of the balancer
        secrets = tmp_path / "secrets.json"
        bob_url = lb.url.replace("127.0.0.1", "localhost")
        secrets.write_text(json.dumps({"servers": {lb.url: {"token": ALICE}, bob_url: {"token": BOB}}}))
        monkeypatch.setenv("OBCLIP_SECRETS_FILE", str(secrets))
        for k in ("OBCLIP_CLOUD_TOKEN", "OBCLIP_CLOUD_URL", "OBCLIP_CLOUD_BASIC"):
            monkeypatch.delenv(k, raising=False)

        async def both():
            groups = await asyncio.gather(
                many_clients(lb.url, plan[: CLIENTS // 2], request_timeout=60, total_timeout=600),
                many_clients(bob_url, plan[CLIENTS // 2:], request_timeout=60, total_timeout=600))
            return [r for group in groups for r in group]
        results = asyncio.run(both())
        served = [len(w.get("/history")) - b for w, b in zip(workers, before)]
    flat = [(plan, res) for plans_c, res_c in zip(plan, results) for plan, res in zip(plans_c, res_c)]
    lost = [str(r) for _, r in flat if isinstance(r, Exception)]
    assert lost == [], lost
    assert len(flat) == CLIENTS * RUNS
    for req, res in flat:  # each result is the one computed for its own request (the digest inside the payload)
        assert res.payload.latents.shape[0] == len(req.candidates)
        assert res.payload.handoff.request_digest == req.digest() and res.payload.handoff.seed == req.seed
    assert all(n > 0 for n in served) and sum(served) == CLIENTS * RUNS, served  # both workers ran runs


def test_killing_one_of_two_workers_mid_run_loses_no_run_and_every_result_equals_the_uninterrupted_one(
        workers, tmp_path, monkeypatch):
    """Issue 23: haproxy in front of two workers; one is killed (SIGKILL) while it runs requests. Every run
    is delivered (the client retries a run lost with its worker on the other one, with a fresh prompt id),
    and each result equals the one the surviving worker computes for the same request without a kill."""
    import threading
    import time

    import torch
    before = len(workers[1].get("/history"))
    clients, runs = 8, 4
    plan = mini_plans(clients, runs, seed_base=7000, steps=8)
    killed: dict = {}
    with HAProxy([w.url for w in workers], tmp_path) as lb:
        secrets = tmp_path / "secrets.json"
        secrets.write_text(json.dumps({"servers": {lb.url: {"token": ALICE}, workers[0].url: {"token": ALICE}}}))
        monkeypatch.setenv("OBCLIP_SECRETS_FILE", str(secrets))
        for k in ("OBCLIP_CLOUD_TOKEN", "OBCLIP_CLOUD_URL", "OBCLIP_CLOUD_BASIC"):
            monkeypatch.delenv(k, raising=False)

        def kill_when_busy():
            victim = workers[1]
            t0 = time.monotonic()
            while time.monotonic() - t0 < 300:
                try:
                    busy = victim.get("/queue")["queue_running"] and len(victim.get("/history")) >= before + 2
                except OSError:
                    busy = False
                if busy:
                    killed["pending"] = len(victim.get("/queue")["queue_pending"]) + 1
                    victim.proc.kill()  # SIGKILL: no goodbye to anyone
                    victim.proc.wait()
                    return
                time.sleep(0.05)
        killer = threading.Thread(target=kill_when_busy, daemon=True)
        killer.start()
        results = asyncio.run(many_clients(lb.url, plan, request_timeout=30, total_timeout=900))
        killer.join(10)
        # the same requests, uninterrupted, on the surviving worker
        reference = asyncio.run(many_clients(workers[0].url, plan, request_timeout=60, total_timeout=900))
    assert killed.get("pending"), "the worker was never killed mid-run"
    flat = [(req, res, ref) for reqs, res_c, ref_c in zip(plan, results, reference)
            for req, res, ref in zip(reqs, res_c, ref_c)]
    lost = [str(res) for _, res, _ in flat if isinstance(res, Exception)]
    assert lost == [] and len(flat) == clients * runs >= 32, lost
    retried = [res for _, res, _ in flat if res.retried]
    assert retried, "no run was lost with the killed worker, so nothing was shown"
    for req, res, ref in flat:
        assert not isinstance(ref, Exception), ref
        assert res.payload.handoff.request_digest == req.digest()
        assert torch.equal(res.payload.latents, ref.payload.latents), (req.seed, res.retried)
    print(f"\nkilled a worker with {killed['pending']} request(s) on it: {len(flat)} delivered, 0 lost, "
          f"{len(retried)} retried ({sum(len(r.retried) for r in retried)} retries)")

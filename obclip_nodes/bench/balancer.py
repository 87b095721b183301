"""Throughput of two cloud workers behind Debian's haproxy next to one worker, with concurrent clients.

Method: two ComfyUI cloud workers with the pack, a tenants file (two client tenants) and the demo's
mini-world cloud model, behind haproxy with cookie stickiness (harness/balancer.py; the configuration
of docs/deploy-cloud.md). Each worker is warmed with one run. Then `clients` concurrent clients each
run `runs` distinct requests (N from 2 to 4, 64x64, `steps` steps, half of them on the cloud) through the balancer;
then the same number of fresh requests go straight to one worker. Each worker is limited to one CPU
thread (OMP_NUM_THREADS=1), standing in for one GPU per worker. A result counts as delivered when
the client got all N latents and the digest inside the payload matches its own request; anything
else is lost. Throughput is delivered runs per wall-clock second. On a shared machine the other
processes' load (reported as load_average_1m) bounds what two workers can gain.

Two more rows (issue 23). fairness: on one worker, a light tenant's single request, first on the idle
worker, then while another tenant has 30 requests queued (round-robin: it waits for the one running
request, not for the 30). kill_a_worker: a fresh round of clients x runs through haproxy; one of the
two workers is killed (SIGKILL) once it runs requests; delivered, lost and retried runs are counted.

    python -m obclip_nodes.bench balancer [--clients 8] [--runs 3] [--steps 20]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path


def run(argv: list[str]) -> dict:
    ap = argparse.ArgumentParser(prog="python -m obclip_nodes.bench balancer")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="T; the cloud runs T/2")
    args = ap.parse_args(argv)

    import threading

    from ..harness.balancer import HAProxy, many_clients, mini_plans
    from ..harness.servers import ComfyServer, prepare_base
    from ..remote import RemoteSettings
    from ..remote.client import CloudClient

    operator, alice, bob = "bench-operator-" + "0" * 16, "bench-alice-" + "1" * 16, "bench-bob-" + "2" * 16

    class Worker(ComfyServer):
        def get(self, path, timeout=10.0):
            r = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {operator}"})
            with urllib.request.urlopen(r, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}")

    def check(plan, results) -> tuple[int, int, list]:
        delivered, lost, errors = 0, 0, []
        for reqs, res in zip(plan, results):
            for req, r in zip(reqs, res):
                if isinstance(r, Exception):
                    lost += 1
                    errors.append(str(r)[:200])
                elif r.payload.latents.shape[0] == len(req.candidates) and \
                        r.payload.handoff.request_digest == req.digest():
                    delivered += 1
                else:
                    lost += 1
        return delivered, lost, errors

    def through(url_alice: str, url_bob: str, plan) -> tuple[float, list]:
        async def both():
            half = len(plan) // 2
            groups = await asyncio.gather(
                many_clients(url_alice, plan[:half], request_timeout=120, total_timeout=1800),
                many_clients(url_bob, plan[half:], request_timeout=120, total_timeout=1800))
            return [r for g in groups for r in g]
        t0 = time.monotonic()
        results = asyncio.run(both())
        return time.monotonic() - t0, results

    def fairness(worker, alice_url: str, bob_url: str) -> dict:
        settings = dict(request_timeout=120, total_timeout=1800)

        async def go():
            light = mini_plans(1, 2, 20_000, args.steps)[0]
            t0 = time.monotonic()
            await CloudClient(RemoteSettings(bob_url, **settings)).run(light[0])
            idle = time.monotonic() - t0
            flood = asyncio.ensure_future(many_clients(alice_url, mini_plans(30, 1, 30_000, args.steps), **settings))
            queued = 0
            while queued < 20 and not flood.done():
                queued = len((await asyncio.to_thread(worker.get, "/queue"))["queue_pending"])
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            await CloudClient(RemoteSettings(bob_url, **settings)).run(light[1])
            loaded = time.monotonic() - t0
            flooded = await flood
            return idle, loaded, queued, sum(not isinstance(r, Exception) for c in flooded for r in c)
        idle, loaded, queued, delivered = asyncio.run(go())
        return {"light_wait_idle_s": round(idle, 3), "light_wait_loaded_s": round(loaded, 3),
                "loaded_over_idle": round(loaded / idle, 2), "heavy_tenant_queued_when_light_arrived": queued,
                "heavy_delivered": delivered, "scheduling": "round-robin across tenants"}

    def kill_a_worker(url: str, victim) -> dict:
        plan = mini_plans(args.clients, args.runs, 40_000, args.steps)
        killed: dict = {}

        def kill_when_busy():
            t0 = time.monotonic()
            while time.monotonic() - t0 < 600:
                try:
                    if victim.get("/queue")["queue_running"] and len(victim.get("/history")) >= 2:
                        killed["queued_on_it"] = len(victim.get("/queue")["queue_pending"]) + 1
                        victim.proc.kill()
                        victim.proc.wait()
                        return
                except OSError:
                    pass
                time.sleep(0.05)
        killer = threading.Thread(target=kill_when_busy, daemon=True)
        killer.start()
        t0 = time.monotonic()
        results = asyncio.run(many_clients(url, plan, request_timeout=60, total_timeout=1800))
        wall = time.monotonic() - t0
        killer.join(10)
        delivered, lost, errors = check(plan, results)
        flat = [r for c in results for r in c if not isinstance(r, Exception)]
        return {"runs": len(plan) * args.runs, "killed_with_runs_on_it": killed.get("queued_on_it", 0),
                "delivered": delivered, "results_lost": lost, "runs_retried": sum(1 for r in flat if r.retried),
                "retries": sum(len(r.retried) for r in flat), "wall_s": round(wall, 2), "errors": errors[:5]}

    with tempfile.TemporaryDirectory(prefix="obclip-bench-balancer-") as tmp:
        tmp = Path(tmp)
        (tmp / "tenants.json").write_text(json.dumps({"operator": operator, "clients": {"alice": alice, "bob": bob}}))
        # One CPU thread per worker stands in for one GPU per worker (the deployment this models).
        env = {"OBCLIP_SERVER_TENANTS_FILE": str(tmp / "tenants.json"), "OBCLIP_MINIWORLD": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        workers = [Worker(f"w{i}", prepare_base(tmp / f"w{i}"), env=env) for i in range(2)]
        try:
            for w in workers:
                w.start()
            with HAProxy([w.url for w in workers], tmp) as lb:
                bob_lb = lb.url.replace("127.0.0.1", "localhost")
                bob_w0 = workers[0].url.replace("127.0.0.1", "localhost")
                (tmp / "secrets.json").write_text(json.dumps({"servers": {
                    lb.url: {"token": alice}, bob_lb: {"token": bob},
                    workers[0].url: {"token": alice}, bob_w0: {"token": bob}, workers[1].url: {"token": alice}}}))
                os.environ["OBCLIP_SECRETS_FILE"] = str(tmp / "secrets.json")
                for k in ("OBCLIP_CLOUD_TOKEN", "OBCLIP_CLOUD_URL", "OBCLIP_CLOUD_BASIC"):
                    os.environ.pop(k, None)
                # warm both workers (model load) with one run each, straight to the worker
                warm = [asyncio.run(many_clients(w.url, mini_plans(1, 1, 10**6, args.steps), request_timeout=120,
                                                 total_timeout=1800))[0][0] for w in workers]
                warm_errors = [str(r)[:200] for r in warm if isinstance(r, Exception)]
                if warm_errors:
                    raise RuntimeError(f"warm-up failed: {warm_errors}")
                before = [len(w.get("/history")) for w in workers]
                lb_s, lb_results = through(lb.url, bob_lb, mini_plans(args.clients, args.runs, 0, args.steps))
                deadline = time.monotonic() + 30  # a run's history entry lands just after its client returns
                while True:
                    served = [len(w.get("/history")) - b for w, b in zip(workers, before)]
                    if sum(served) >= args.clients * args.runs or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                one_s, one_results = through(workers[0].url, bob_w0,
                                             mini_plans(args.clients, args.runs, 10**5, args.steps))
                fair = fairness(workers[0], workers[0].url, bob_w0)
                kill = kill_a_worker(lb.url, workers[1])
        finally:
            for w in workers:
                w.stop()
    lb_ok, lb_lost, lb_err = check(mini_plans(args.clients, args.runs, 0, args.steps), lb_results)
    one_ok, one_lost, one_err = check(mini_plans(args.clients, args.runs, 10**5, args.steps), one_results)
    total = args.clients * args.runs
    return {
        "ok": lb_lost == 0 and one_lost == 0 and kill["results_lost"] == 0 and kill["killed_with_runs_on_it"] > 0,
        "clients": args.clients, "runs_per_client": args.runs, "runs": total,
        "balancer": {"workers": 2, "router": "haproxy (cookie stickiness)", "delivered": lb_ok,
                     "results_lost": lb_lost, "wall_s": round(lb_s, 2), "runs_per_s": round(lb_ok / lb_s, 3),
                     "runs_per_worker": served, "errors": lb_err[:5]},
        "single_worker": {"workers": 1, "delivered": one_ok, "results_lost": one_lost, "wall_s": round(one_s, 2),
                          "runs_per_s": round(one_ok / one_s, 3), "errors": one_err[:5]},
        "speedup": round((lb_ok / lb_s) / (one_ok / one_s), 2) if one_ok and lb_ok else None,
        "fairness": fair, "kill_a_worker": kill,
        "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
        "request": {"N": "2..4", "size": "64x64", "steps": args.steps, "cloud_steps": max(1, args.steps // 2),
                    "model": "obclip-mini-cloud"},
    }

"""The remote protocol against REAL ComfyUI servers on loopback: what the cloud receives, token auth,
and the fault table of issue 4 (one test per row; rows a real ComfyUI cannot produce are in
tests/unit/test_remote_faults.py against a toy server).

Servers (module scope, shared): `cloud` has the pack, a token and a candidate limit; `bare` has no
pack and serves https with a self-signed certificate. The last tests restart and kill `cloud`.
"""
from __future__ import annotations

import asyncio
import difflib
import json
import re
import ssl
import subprocess
import threading
import time
import uuid
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from obclip_nodes.harness.servers import ComfyServer, free_port, prepare_base
from obclip_nodes.privacy import expand_prompt
from obclip_nodes.protocol import CloudRequest, build_server_prompt
from obclip_nodes.protocol.request import encode_body
from obclip_nodes.remote import CloudCancelled, CloudError, RemoteSettings
from obclip_nodes.remote.client import CloudClient
from obclip_nodes.harness.loopback import RecordingProxy, ToyCloud

pytestmark = pytest.mark.servers
TOKEN = "test-token-5b1e"
SMALL = dict(width=32, height=32, steps=3, cloud_steps=1)  # real SD1.5 on the cloud: a 4x4 latent
VARIANTS = expand_prompt("portrait photo of a young woman in a red coat").candidates


class Server(ComfyServer):
    """A ComfyServer whose own readiness checks carry the token / trust the certificate."""

    def __init__(self, *a, token=None, cert=None, **kw):
        super().__init__(*a, **kw)
        self.token, self.cert = token, cert

    @property
    def url(self) -> str:
        return f"{'https' if self.cert else 'http'}://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 10.0):
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"}
                                     if self.token else {})
        ctx = ssl.create_default_context(cafile=str(self.cert)) if self.cert else None
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return json.loads(r.read() or b"{}")

    def status(self, path: str, headers=None) -> int:
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=headers or {}), timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code


@pytest.fixture(scope="module")
def ckpt(sd15_pair):
    return sd15_pair[0]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, ckpt):
    srv = Server("cloud", prepare_base(tmp_path_factory.mktemp("rcloud"), [ckpt]), token=TOKEN,
                 env={"OBCLIP_SERVER_TOKEN": TOKEN, "OBCLIP_SERVER_MAX_CANDIDATES": "8"})
    with srv:
        srv.require_nodes("ObCLIPServerSampler", "ObCLIPServerReturn")
        yield srv


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return d


@pytest.fixture(scope="module")
def bare(tmp_path_factory, ckpt, cert):
    """A stock ComfyUI without the pack, on https."""
    srv = Server("bare", prepare_base(tmp_path_factory.mktemp("rbare"), [ckpt], install_pack=False),
                 cert=cert / "cert.pem",
                 extra_args=["--tls-keyfile", str(cert / "key.pem"), "--tls-certfile", str(cert / "cert.pem")])
    with srv:
        yield srv


@pytest.fixture(autouse=True)
def client_env(monkeypatch, tmp_path, request):
    monkeypatch.setenv("OBCLIP_CLOUD_TOKEN", TOKEN)
    # the token is scoped to the cloud (and the recording proxies in front of it, see scope_to)
    monkeypatch.setenv("OBCLIP_CLOUD_URL", request.getfixturevalue("cloud").url
                       if "cloud" in request.fixturenames else "http://127.0.0.1:1")
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("OBCLIP_SECRETS_FILE", "OBCLIP_CLOUD_BASIC", "OBCLIP_CLOUD_CA_FILE", "OBCLIP_STOCK_FALLBACK",
              "OBCLIP_CLOUD_ALLOW_HTTP"):
        monkeypatch.delenv(k, raising=False)


def scope_to(*urls: str) -> None:
    import os
    os.environ["OBCLIP_CLOUD_URL"] = ",".join(urls)  # restored by monkeypatch after the test


def request(ckpt, candidates=("a photo of a woman", "a photo of a man"), **kw) -> CloudRequest:
    return CloudRequest(candidates=tuple(candidates), checkpoint=Path(ckpt).name, **{**SMALL, **kw})


def run(url, req, *, on_progress=None, should_cancel=None, **settings):
    s = RemoteSettings(url, **{"request_timeout": 5.0, "total_timeout": 240.0, **settings})
    return asyncio.run(CloudClient(s).run(req, on_progress=on_progress, should_cancel=should_cancel))


def wait_running(server: Server, timeout=120.0) -> str:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        running = server.get("/queue")["queue_running"]
        if running:
            return running[0][1]
        time.sleep(0.05)
    raise AssertionError("nothing started running on the server")


# ------------------------------------------------------------------ 1. obliviousness on the wire

def normalise(records: list[dict], ids: list[str]) -> tuple[bytes, frozenset]:
    """Every byte the cloud received, with our random ids (and the random WebSocket key) masked: (the requests
    other than status polls, in order; the distinct status polls). Polls (GET /queue, GET /history/<id>) are a
    set because whether and how often the client polls follows how busy the machine is (the WebSocket usually
    says "done" first), not which candidate is real; their bytes are still compared."""
    out: list[str] = []
    polls: set[str] = set()
    for r in records:
        text = json.dumps({"method": r["method"], "path": r["path"], "query": r["query"],
                           "headers": [[k, "<random ws key>" if k.lower() == "sec-websocket-key" else v]
                                       for k, v in r["headers"]],
                           "body": r["body"].decode("utf-8", "replace")}, sort_keys=True)
        for i, rid in enumerate(ids):
            text = text.replace(rid, f"<random id {i}>")
        # the result key (its hash in the request, the secret on the fetch): random per run, like the ids
        text = re.sub(r"[0-9a-f]{64}", "<random key>", text)
        is_poll = r["method"] == "GET" and (r["path"] == "/queue" or r["path"].startswith("/history/"))
        (polls.add if is_poll else out.append)(text)
    return "\n".join(out).encode(), frozenset(polls)


def test_wire_bytes_are_identical_for_every_real_candidate(cloud, ckpt):
    prompt = "portrait photo of a young woman in a red coat"
    variants = expand_prompt(prompt).candidates
    assert len(variants) == 8                  # a cell of gender x age: girl, young woman, ..., old man
    run(cloud.url, request(ckpt, variants))  # warm the cloud: timing must not add polls to one run only

    async def record_all():
        seen, ids = [], []
        async with RecordingProxy(cloud.url) as proxy:
            scope_to(cloud.url, proxy.url)
            for real in variants:  # each variant in turn is the user's real prompt
                exp = expand_prompt(real)
                assert exp.candidates[exp.real_index] == real
                proxy.records.clear()
                s = RemoteSettings(proxy.url, request_timeout=10, total_timeout=120)
                r = await CloudClient(s).run(request(ckpt, exp.candidates))
                post = next(x for x in proxy.records if x["method"] == "POST" and x["path"] == "/prompt")
                body = json.loads(post["body"])
                assert set(body) == {"prompt", "client_id", "prompt_id"} and body["prompt_id"] == r.prompt_id
                assert r.payload.latents.shape[0] == 8
                seen.append(normalise(list(proxy.records), [body["client_id"], body["prompt_id"]]))
                ids.append((body["client_id"], body["prompt_id"]))
        return seen, ids

    seen, ids = asyncio.run(record_all())
    requests = [r for r, _ in seen]
    for k, s in enumerate(requests):
        assert s == requests[0], ("the cloud received different bytes when candidate %d was real:\n%s" % (
            k, "\n".join(difflib.unified_diff(requests[0].decode().splitlines(), s.decode().splitlines(),
                                              lineterm=""))))
    # every poll any run sent is one of the same two requests (bytes compared, ids masked)
    polls = frozenset().union(*(p for _, p in seen))
    assert {json.loads(p)["path"] for p in polls} <= {"/queue", "/history/<random id 1>"}, sorted(polls)
    assert len(polls) <= 2, sorted(polls)
    wire = requests[0].decode()
    for what in ("POST", "clientId=<random id 0>", "/obclip/result/<random id 1>", "Authorization", "Upgrade",
                 '"result_key_sha256\\":\\"<random key>', '"X-ObCLIP-Result-Key", "<random key>"'):
        assert what in wire
    assert "extra_pnginfo" not in wire and "workflow" not in wire
    # random ids: fresh per run, uuid-shaped, never derived from the prompt
    assert len({c for c, _ in ids}) == len({p for _, p in ids}) == len(variants)
    assert all(re.fullmatch(r"[0-9a-f]{32}", c) and re.fullmatch(r"[0-9a-f-]{36}", p) for c, p in ids)


# ------------------------------------------------------------------ 2. token auth on the server

def test_server_token_auth_guards_every_route(cloud, ckpt, monkeypatch):
    for path in ("/object_info", "/api/object_info", "/history", "/prompt", "/ws?clientId=x", "/system_stats",
                 "/obclip/result/x"):
        assert cloud.status(path) == 401, path
        assert cloud.status(path, {"Authorization": "Bearer wrong"}) == 403, path
    assert cloud.status("/prompt", {"Authorization": f"Bearer {TOKEN}"}) == 200
    assert cloud.status("/obclip/result/x", {"Authorization": f"Bearer {TOKEN}"}) == 400  # no key: told to send it
    assert cloud.status("/obclip/result/x", {"Authorization": f"Bearer {TOKEN}", "X-ObCLIP-Result-Key": "k"}) == 404
    monkeypatch.delenv("OBCLIP_CLOUD_TOKEN")
    with pytest.raises(CloudError, match="HTTP 401.*OBCLIP_CLOUD_TOKEN"):
        run(cloud.url, request(ckpt))
    monkeypatch.setenv("OBCLIP_CLOUD_TOKEN", "wrong")
    with pytest.raises(CloudError, match="HTTP 403: wrong credentials"):
        run(cloud.url, request(ckpt))
    assert "refused GET /obclip/info" in cloud.log_tail(400)  # the client's first call, refused and logged


# ------------------------------------------------------------------ 3. the fault table (real servers)

def test_server_down_or_wrong_port():
    with pytest.raises(CloudError, match=r"cannot connect to the cloud at http://127.0.0.1:\d+ .*is it running"):
        run(f"http://127.0.0.1:{free_port()}", request("x.safetensors"))


def test_dns_failure():
    t0 = time.monotonic()
    with pytest.raises(CloudError, match="cannot resolve the host of http://no-such-host.invalid:8188 "
                                         r"\(DNS failure\)|did not answer"):
        run("http://no-such-host.invalid:8188", request("x.safetensors"), request_timeout=3)
    assert time.monotonic() - t0 < 15


def test_remote_validation_error(cloud, ckpt):
    before = len(cloud.get("/history"))
    with pytest.raises(CloudError, match=r"rejected the request: .*node 2 \(ObCLIPServerSampler\): Value 150.0 bigger than max of 100.0 cfg"):
        run(cloud.url, request(ckpt, cfg=150.0))  # valid for the client, above the server node's maximum
    assert len(cloud.get("/history")) == before


def test_missing_checkpoint_lists_the_available_ones(cloud, ckpt):
    from obclip_nodes.miniworld.arch import checkpoint_name
    # the pack's own mini-world checkpoints are listed on every server that has the pack
    available = ", ".join(sorted([Path(ckpt).name, checkpoint_name("cloud"), checkpoint_name("device")]))
    with pytest.raises(CloudError, match=f"no checkpoint 'nope.safetensors'; available: {re.escape(available)}$"):
        run(cloud.url, CloudRequest(candidates=("a", "b"), checkpoint="nope.safetensors", **SMALL))


def test_n_larger_than_the_server_accepts(cloud, ckpt):
    many = [f"a photo of person {i}" for i in range(9)]
    with pytest.raises(CloudError, match="accepts at most 8 ObCLIP candidates per request, got 9"):
        run(cloud.url, request(ckpt, many))


def test_socket_drop_resumes_by_prompt_id(cloud, ckpt):
    async def go():
        async with RecordingProxy(cloud.url) as proxy:
            scope_to(cloud.url, proxy.url)
            proxy.drop_ws_after = "execution_start"
            r = await CloudClient(RemoteSettings(proxy.url, request_timeout=10, total_timeout=240)).run(
                request(ckpt, VARIANTS))  # cached: the drop lands right before the end, resumed over HTTP
            ws = [x["query"] for x in proxy.records if x["path"] == "/ws"]
            return r, ws, proxy.ws_connections
    r, ws, conns = asyncio.run(go())
    assert r.reconnects >= 1 and conns == 1 + r.reconnects
    assert len(set(ws)) == 1 and len(ws) == conns  # the same client id every time
    assert r.payload.latents.shape == (len(VARIANTS), 4, SMALL["height"] // 8, SMALL["width"] // 8)
    assert torch.equal(r.payload.latents, run(cloud.url, request(ckpt, VARIANTS)).payload.latents)


def test_user_cancel_interrupts_only_our_prompt(cloud, ckpt):
    cancel = threading.Event()
    foreign = build_server_prompt(request(ckpt))  # someone else's (cached, quick) prompt queued behind ours
    foreign_id = str(uuid.uuid4())  # ComfyUI 0.33 accepts only UUID prompt ids from clients

    def canceller():
        wait_running(cloud)
        req = urllib.request.Request(cloud.url + "/prompt", data=encode_body(
            {"prompt": foreign, "client_id": "someone-else", "prompt_id": foreign_id}),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        cancel.set()
    threading.Thread(target=canceller, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(CloudCancelled, match="only ours"):
        # long enough (16x16 latent, 50 steps) that the cancel lands mid-run on every host, however fast
        run(cloud.url, request(ckpt, seed=31, steps=50, cloud_steps=50, width=128, height=128),
            should_cancel=cancel.is_set)
    assert time.monotonic() - t0 < 120
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and foreign_id not in cloud.get("/history"):
        time.sleep(0.1)
    assert cloud.get(f"/history/{foreign_id}")[foreign_id]["status"]["status_str"] == "success"
    ours = [h for h in cloud.get("/history").values() if h["prompt"][2]["2"]["inputs"]["seed"] == 31]
    assert all(h["status"]["status_str"] == "error" for h in ours)  # interrupted, or never run at all


def test_missing_pack_falls_back_to_stock_nodes_over_tls(cloud, bare, ckpt, cert, monkeypatch, comfy_root):
    req = request(ckpt, seed=41)
    with pytest.raises(CloudError, match="TLS certificate of https://127.0.0.1:.* is not trusted"):
        run(bare.url, req)
    monkeypatch.setenv("OBCLIP_CLOUD_CA_FILE", str(cert / "cert.pem"))
    monkeypatch.setenv("OBCLIP_STOCK_FALLBACK", "0")
    with pytest.raises(CloudError, match="does not have the ObCLIP pack .*fallback is disabled"):
        run(bare.url, req)
    monkeypatch.delenv("OBCLIP_STOCK_FALLBACK")
    stock = run(bare.url, req)
    assert stock.mode == "stock" and stock.server.startswith("https://")
    packed = run(cloud.url, req)
    assert packed.mode == "pack"
    assert stock.payload.handoff.sigmas == pytest.approx(packed.payload.handoff.sigmas, rel=1e-5)
    scale = packed.payload.latents.abs().max().item()
    assert torch.allclose(stock.payload.latents, packed.payload.latents, rtol=1e-4, atol=1e-4 * scale)


def test_two_clients_at_the_same_time_each_get_their_own_latents(cloud, ckpt):
    a, b = request(ckpt, VARIANTS, seed=71), request(ckpt, seed=41)

    async def both():
        mk = lambda: CloudClient(RemoteSettings(cloud.url, request_timeout=10, total_timeout=240))  # noqa: E731
        return await asyncio.gather(mk().run(a), mk().run(b))
    ra, rb = asyncio.run(both())
    assert ra.prompt_id != rb.prompt_id
    # each payload is the one computed for its own request: row count, and the seed inside the checksummed hand-off
    assert ra.payload.latents.shape[0] == 8 and ra.payload.handoff.seed == 71
    assert rb.payload.latents.shape[0] == 2 and rb.payload.handoff.seed == 41
    assert ra.payload.sha256 != rb.payload.sha256


def test_failover_and_shortest_queue(cloud, ckpt):
    req = request(ckpt, seed=41)  # what the cloud ran last: served from its cache

    async def go():
        async with ToyCloud(queue=7, checkpoint=Path(ckpt).name) as busy:
            dead = f"http://127.0.0.1:{free_port()}"
            s = RemoteSettings(f"{busy.url}, {dead}, {cloud.url}", request_timeout=5, total_timeout=120)
            r = await CloudClient(s).run(req)
            return r, busy.posts, dead
    r, busy_posts, dead = asyncio.run(go())
    assert r.server == cloud.url and busy_posts == []  # the shortest queue won; the busy server got nothing
    assert [u for u, _ in r.attempts] == [dead] and r.timings["queues"][cloud.url] == 0


def test_server_restarted_between_two_runs(cloud, ckpt):
    req = request(ckpt, seed=41)
    first = run(cloud.url, req)
    cloud.stop()
    cloud.start()
    second = run(cloud.url, req)
    assert second.prompt_id != first.prompt_id
    assert torch.equal(first.payload.latents, second.payload.latents)  # deterministic, nothing stale


def test_server_killed_mid_run(cloud, ckpt):
    killer = threading.Thread(target=lambda: (wait_running(cloud), cloud.proc.kill()), daemon=True)
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(CloudError, match="stopped answering while running our prompt|dropped the connection|"
                                         "no longer knows our prompt|cannot connect"):
        run(cloud.url, request(ckpt, seed=61, steps=50, cloud_steps=50), request_timeout=3)
    assert time.monotonic() - t0 < 60
    killer.join(5)
    cloud.stop()

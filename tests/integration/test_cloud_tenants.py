"""A cloud shared by several tenants, attacked on real ComfyUI servers on loopback (issue 15).

Servers (module scope): `cloud` has the pack, a tenants file (operator + clients alice and bob) and
small limits; `device` is a user's ComfyUI with the pack, no auth, and a cloud token scoped to `cloud`.
Every attack test shows the attacker's outcome and that the honest client still succeeds.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from obclip_nodes.harness.servers import ComfyServer, prepare_base
from obclip_nodes.protocol import CloudRequest, build_server_prompt
from obclip_nodes.protocol.request import encode_body, new_result_key
from obclip_nodes.remote import CloudError, RemoteSettings
from obclip_nodes.remote.client import CloudClient

pytestmark = pytest.mark.servers
OPERATOR, ALICE, BOB = "operator-token-0123456789abcdef", "alice-token-0123456789abcdef", "bob-token-0123456789abcdef"
SMALL = dict(width=64, height=64, steps=3, cloud_steps=1)
LIMITS = {"OBCLIP_SERVER_MAX_CANDIDATES": "8", "OBCLIP_SERVER_MAX_STEPS": "60",
          "OBCLIP_SERVER_MAX_PIXELS": str(256 * 256), "OBCLIP_SERVER_MAX_PROMPT_CHARS": "300"}
BAD_INPUT_TABLE: list[dict] = []


def call(url: str, method: str, path: str, token: str | None = None, body=None, headers=None, timeout=30):
    """-> (status, parsed JSON or raw bytes). `body`: a dict (sent as JSON) or raw bytes."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {}),
         **(headers or {})}
    req = urllib.request.Request(url + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else {}
    except ValueError:
        return status, raw


@pytest.fixture(scope="module")
def ckpt(sd15_pair):
    return Path(sd15_pair[0])


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, ckpt):
    base = prepare_base(tmp_path_factory.mktemp("tcloud"), [ckpt])
    tenants = base / "tenants.json"
    tenants.write_text(json.dumps({"operator": OPERATOR, "clients": {"alice": ALICE, "bob": BOB}}))

    class Cloud(ComfyServer):
        def get(self, path, timeout=10.0):
            status, obj = call(self.url, "GET", path, OPERATOR, timeout=timeout)
            if status != 200:
                raise urllib.error.HTTPError(self.url + path, status, str(obj), {}, None)
            return obj

    srv = Cloud("tcloud", base, env={"OBCLIP_SERVER_TENANTS_FILE": str(tenants), **LIMITS})
    with srv:
        srv.require_nodes("ObCLIPServerSampler", "ObCLIPServerReturn")
        yield srv


@pytest.fixture(autouse=True)
def client_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("OBCLIP_SECRETS_FILE", "OBCLIP_CLOUD_BASIC", "OBCLIP_CLOUD_CA_FILE", "OBCLIP_CLOUD_URL",
              "OBCLIP_CLOUD_TOKEN", "OBCLIP_CLOUD_ALLOW_HTTP"):
        monkeypatch.delenv(k, raising=False)


def as_tenant(monkeypatch, token: str, *urls: str) -> None:
    monkeypatch.setenv("OBCLIP_CLOUD_TOKEN", token)
    monkeypatch.setenv("OBCLIP_CLOUD_URL", ",".join(urls))


def request(ckpt, candidates=("a photo of a woman", "a photo of a man"), **kw) -> CloudRequest:
    return CloudRequest(candidates=tuple(candidates), checkpoint=Path(ckpt).name, **{**SMALL, **kw})


def client(url, **kw) -> CloudClient:
    return CloudClient(RemoteSettings(url, **{"request_timeout": 10.0, "total_timeout": 240.0, **kw}))


def wait_for_running(cloud, timeout=120.0) -> list:
    """The operator's view of the running item: [number, prompt_id, prompt, extra_data, outputs]."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        running = cloud.get("/queue")["queue_running"]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError("nothing started running on the cloud")


# ------------------------------------------------------------------ swap via a duplicate prompt_id

def test_result_swap_via_duplicate_prompt_id_fails_and_the_victim_gets_its_own(cloud, ckpt, monkeypatch):
    as_tenant(monkeypatch, ALICE, cloud.url)
    victim_req = request(ckpt, seed=101, steps=8, cloud_steps=8)
    attack: dict = {}

    def attacker():
        item = wait_for_running(cloud)  # the victim's prompt id leaked (before: /queue showed it to all)
        swapped = build_server_prompt(request(ckpt, ("a photo of a cat", "a photo of a dog"), seed=101),
                                      new_result_key()[1])
        for token, extra in ((BOB, {}), (BOB, {"front": True}), (ALICE, {}), (OPERATOR, {"front": True})):
            attack[(token[:5], bool(extra))] = call(cloud.url, "POST", "/prompt", token, {
                "prompt": swapped, "client_id": f"attacker-{token[:3]}-{len(attack)}", "prompt_id": item[1], **extra})
    t = threading.Thread(target=attacker, daemon=True)
    t.start()
    result = asyncio.run(client(cloud.url).run(victim_req))
    t.join(30)
    assert attack[("bob-t", False)][0] == 400
    assert "was already used on this server" in attack[("bob-t", False)][1]["error"]["message"]
    assert attack[("bob-t", True)][0] == 400 and "remove ['front']" in attack[("bob-t", True)][1]["error"]["message"]
    assert attack[("alice", False)][0] == 400 and attack[("opera", True)][0] == 400  # nobody reuses an id
    # the honest client: its own latents, proven by the digest of its own request inside the payload
    assert result.payload.latents.shape[0] == 2
    assert result.payload.handoff.request_digest == victim_req.digest() and result.payload.handoff.seed == 101


def test_a_swapped_result_is_refused_by_the_client(cloud, ckpt, monkeypatch):
    """Even a cloud that hands back another request's result cannot make the client use it: here a
    rogue front (the loopback double) serves the real cloud's payload for request A to a client asking B."""
    from obclip_nodes.harness.loopback import ToyCloud
    as_tenant(monkeypatch, ALICE, cloud.url)
    a = asyncio.run(client(cloud.url).run(request(ckpt, seed=7)))
    raw = __import__("safetensors.torch", fromlist=["save"]).save(
        {"latents": a.payload.latents}, metadata={"obclip_handoff": a.payload.handoff.to_json()})

    async def go():
        async with ToyCloud(payload=(raw, 2), checkpoint=ckpt.name) as toy:
            return await client(toy.url, request_timeout=3, total_timeout=20).run(request(ckpt, seed=8))
    with pytest.raises(CloudError, match="computed for a different request"):
        asyncio.run(go())


# ------------------------------------------------------------------ theft by a co-tenant

def test_result_theft_by_a_co_tenant_fails_and_the_result_is_gone_after_one_fetch(cloud, ckpt, monkeypatch):
    as_tenant(monkeypatch, ALICE, cloud.url)
    stolen: list = []
    stop = threading.Event()

    def thief():
        pid = wait_for_running(cloud)[1]  # assume the id leaked
        while not stop.is_set():
            for token, key in ((BOB, None), (BOB, "0" * 64), (OPERATOR, None), (OPERATOR, "guess")):
                status, body = call(cloud.url, "GET", f"/obclip/result/{pid}", token,
                                    headers={"X-ObCLIP-Result-Key": key} if key else {})
                stolen.append((token[:5], key is not None, status))
            time.sleep(0.02)
    t = threading.Thread(target=thief, daemon=True)
    t.start()
    result = asyncio.run(client(cloud.url).run(request(ckpt, seed=202, steps=8, cloud_steps=8)))
    stop.set()
    t.join(10)
    assert stolen, "the thief never ran"
    assert {s for *_, s in stolen} <= {400, 404}, stolen   # never 200
    assert all(s == 400 for _, keyed, s in stolen if not keyed)  # no key: told to present one
    assert result.payload.latents.shape[0] == 2  # the honest client got it
    # the result left the server on the first fetch; nothing is left to steal afterwards
    for token in (BOB, OPERATOR, ALICE):
        assert call(cloud.url, "GET", f"/obclip/result/{result.prompt_id}", token,
                    headers={"X-ObCLIP-Result-Key": "x"})[0] == 404


# ------------------------------------------------------------------ /history, /queue and WebSocket snooping

def test_history_queue_and_websocket_snooping_by_a_co_tenant(cloud, ckpt, monkeypatch):
    as_tenant(monkeypatch, ALICE, cloud.url)
    seen: dict = {}

    async def go():
        async with aiohttp.ClientSession() as s:
            bob_ws = await s.ws_connect(f"{cloud.url}/ws?clientId=bob-socket-1",
                                        headers={"Authorization": f"Bearer {BOB}"})
            frames: list = []

            async def listen():
                async for msg in bob_ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        frames.append(json.loads(msg.data))

            listener = asyncio.ensure_future(listen())

            async def snoop():
                item = await asyncio.to_thread(wait_for_running, cloud)
                seen["pid"], seen["cid"] = item[1], item[3]["client_id"]
                seen["bob_queue"] = await asyncio.to_thread(call, cloud.url, "GET", "/queue", BOB)
                seen["op_queue"] = await asyncio.to_thread(call, cloud.url, "GET", "/queue", OPERATOR)
                try:  # take over the victim's socket id to receive its events
                    await s.ws_connect(f"{cloud.url}/ws?clientId={seen['cid']}",
                                       headers={"Authorization": f"Bearer {BOB}"})
                    seen["hijack"] = 101
                except aiohttp.WSServerHandshakeError as e:
                    seen["hijack"] = e.status
            snooper = asyncio.ensure_future(snoop())
            r = await client(cloud.url).run(request(ckpt, seed=303, steps=8, cloud_steps=8))
            await snooper
            await asyncio.sleep(0.5)
            listener.cancel()
            await bob_ws.close()
            return r, frames
    result, bob_frames = asyncio.run(go())
    pid = result.prompt_id
    assert seen["pid"] == pid
    # /queue: bob sees nothing of alice's running prompt; the operator does
    assert seen["bob_queue"] == (200, {"queue_running": [], "queue_pending": []})
    assert [i[1] for i in seen["op_queue"][1]["queue_running"]] == [pid]
    # /history: bob sees neither the list entry nor the entry by id; alice and the operator do
    assert pid not in call(cloud.url, "GET", "/history", BOB)[1]
    assert call(cloud.url, "GET", f"/history/{pid}", BOB) == (200, {})
    assert "a photo of a woman" in json.dumps(call(cloud.url, "GET", f"/history/{pid}", ALICE)[1][pid]["prompt"])
    assert pid in call(cloud.url, "GET", "/history", OPERATOR)[1]
    # WebSocket: bob cannot take alice's socket id, and his own socket got none of her events
    assert seen["hijack"] == 403
    assert bob_frames and {f["type"] for f in bob_frames} <= {"status"}, bob_frames
    assert pid not in json.dumps(bob_frames)
    # and bob cannot dequeue or interrupt it either
    assert call(cloud.url, "POST", "/queue", BOB, {"delete": [pid]})[0] == 403
    assert call(cloud.url, "POST", "/interrupt", BOB, {"prompt_id": pid})[0] == 403


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/system_stats", None), ("POST", "/free", {"unload_models": True}), ("POST", "/interrupt", {}),
    ("POST", "/queue", {"clear": True}), ("POST", "/history", {"clear": True}), ("GET", "/view?filename=x", None),
    ("GET", "/models/loras", None), ("GET", "/userdata?dir=.", None), ("GET", "/", None),
    ("POST", "/obclip/expand", {"prompt": "a woman"}), ("GET", "/obclip/probe?url=http://127.0.0.1:9", None),
    ("GET", "/api/system_stats", None),
])
def test_operator_routes_are_closed_to_client_tokens(cloud, method, path, body):
    status, answer = call(cloud.url, method, path, BOB, body)
    expected = {"/interrupt": "interrupt only its own prompt", "/queue": "only delete its own prompts"}.get(
        path, "is for the cloud's operator")
    assert status == 403 and expected in answer["error"]["message"], (status, answer)
    if path.endswith("system_stats"):
        assert call(cloud.url, method, path, OPERATOR)[0] == 200


# ------------------------------------------------------------------ the bad-input table

def sampler_body(ckpt, **override):
    req = request(ckpt, seed=5)
    graph = build_server_prompt(req, new_result_key()[1])
    graph["2"]["inputs"].update(override)
    return {"prompt": graph, "client_id": "table-client", "prompt_id": f"table-{time.monotonic_ns()}"}


BAD_INPUTS = [
    ("N = 9 (limit 8)", lambda c: sampler_body(c, candidates=json.dumps([f"person {i}" for i in range(9)])),
     400, "at most 8 ObCLIP candidates per request, got 9"),
    ("N = 5000", lambda c: sampler_body(c, candidates=json.dumps([f"person {i}" for i in range(5000)])),
     400, "5000 candidates exceed the wire limit of 256"),
    ("steps = 5000", lambda c: sampler_body(c, steps=5000, cloud_steps=10), 400, "at most 60 steps"),
    ("2048 x 2048", lambda c: sampler_body(c, width=2048, height=2048), 400,
     "at most 65536 pixels (width*height) per image, got 2048x2048"),
    ("1 MB prompt", lambda c: sampler_body(c, candidates=json.dumps(["x" * 1_000_000, "y"])), 400,
     "a candidate is 1000000 characters; this server accepts at most 300"),
    ("8 MB body", lambda c: sampler_body(c, negative="z" * 8_000_000), 413, "this server accepts at most 4194304"),
    ("NaN cfg", lambda c: encode_body(sampler_body(c)).replace(b'"cfg":7.0', b'"cfg":NaN'), 400,
     "NaN is not valid JSON"),
    ("empty candidate list", lambda c: sampler_body(c, candidates="[]"), 400,
     "candidates must be a non-empty list of non-empty strings"),
    ("empty candidate", lambda c: sampler_body(c, candidates='["a photo", " "]'), 400,
     "candidates must be a non-empty list of non-empty strings"),
    ("nested JSON (100000 deep)", lambda c: b'{"prompt": ' + b"[" * 100000 + b"]" * 100000 + b"}", 400,
     "nests too deeply"),
    ("non-UTF-8 body", lambda c: b'{"prompt": "\xff\xfe"}', 400, "not UTF-8"),
    ("not an object", lambda c: b"[1, 2]", 400, "must be a JSON object"),
    ("no prompt", lambda c: {"client_id": "x", "prompt_id": "y"}, 400, "the prompt is missing"),
    ("another graph", lambda c: {"prompt": {"1": {"class_type": "SaveImage", "inputs": {}}},
                                 "client_id": "x", "prompt_id": "table-other"}, 400,
     "a client may submit only the ObCLIP request graph"),
    # fields that used to pass the submit check and fail only at run time (issue 23)
    ("unknown sampler", lambda c: sampler_body(c, sampler_name="bogus"), 400, "is not one of this server's samplers"),
    ("unknown scheduler", lambda c: sampler_body(c, scheduler="bogus"), 400, "is not one of this server's schedulers"),
    ("unknown acceleration key", lambda c: sampler_body(c, acceleration='{"warp":true}'), 400,
     "unknown acceleration settings ['warp']"),
    ("lone surrogate", lambda c: sampler_body(c, candidates='["a photo \\ud800", "b"]'), 400, "lone surrogate"),
]


@pytest.mark.parametrize("name, make, status, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_at_submit_time_with_a_clear_message(cloud, ckpt, name, make, status, message):
    before = len(cloud.get("/history"))
    got, answer = call(cloud.url, "POST", "/prompt", ALICE, make(ckpt))
    text = answer["error"]["message"] if isinstance(answer, dict) and isinstance(answer.get("error"), dict) else str(answer)
    BAD_INPUT_TABLE.append({"input": name, "status": got, "message": text})
    assert got == status and message in text, (got, text)
    assert len(cloud.get("/history")) == before and cloud.get("/queue")["queue_pending"] == []  # nothing queued


def test_nested_json_and_non_utf8_never_500_on_any_json_route(cloud):
    for path in ("/prompt", "/queue", "/interrupt", "/history", "/free"):
        for raw in (b"[" * 50000, b"\xff\xfe\xfd", b'{"a": NaN}'):
            assert call(cloud.url, "POST", path, OPERATOR, raw)[0] == 400, (path, raw[:8])
    assert call(cloud.url, "GET", "/history?max_items=lots", OPERATOR)[0] == 400


def test_print_bad_input_table():
    """Not a check: prints the table for the report (run with -s)."""
    for row in BAD_INPUT_TABLE:
        print(f"| {row['input']} | {row['status']} | {row['message'][:150]} |")


# ------------------------------------------------------------------ the client keeps its promises

def test_a_client_that_gives_up_leaves_nothing_running_or_stored(cloud, ckpt, monkeypatch):
    as_tenant(monkeypatch, ALICE, cloud.url)
    with pytest.raises(CloudError, match="total timeout of 4 s"):
        asyncio.run(client(cloud.url, total_timeout=4.0).run(request(ckpt, seed=404, steps=60, cloud_steps=60)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (cloud.get("/queue")["queue_running"] or cloud.get("/queue")["queue_pending"]):
        time.sleep(0.1)
    ours = [(pid, h) for pid, h in cloud.get("/history").items() if h["prompt"][2]["2"]["inputs"]["seed"] == 404]
    assert ours and all(h["status"]["status_str"] == "error" for _, h in ours)  # interrupted, not run to the end
    assert any(m[0] == "execution_interrupted" for _, h in ours for m in h["status"]["messages"])


# ------------------------------------------------------------------ credentials scoped to their server

class Listener:
    """Captures every request's headers; answers 404, or redirects to `redirect` when set."""

    def __init__(self, redirect: str | None = None):
        self.seen: list[dict] = []
        self.redirect = redirect
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request):
        self.seen.append({"path": request.path_qs, "headers": dict(request.headers)})
        if self.redirect:
            raise web.HTTPFound(self.redirect + request.path_qs)
        return web.json_response({}, status=404)

    def start_in_thread(self) -> "Listener":
        ready = threading.Event()

        def serve():
            self.loop = asyncio.new_event_loop()
            self.runner = web.AppRunner(self.app, access_log=None)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            ready.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def authorizations(self) -> list:
        return [r["headers"].get("Authorization") for r in self.seen if "Authorization" in r["headers"]]


def test_token_capture_through_a_workflow_url_fails(cloud, ckpt, monkeypatch):
    """A workflow someone shared points server_url at their listener: the token stays home."""
    as_tenant(monkeypatch, ALICE, cloud.url)
    grabber = Listener().start_in_thread()
    elsewhere = Listener().start_in_thread()
    scoped = Listener(redirect=elsewhere.url).start_in_thread()  # the token's own server redirects elsewhere
    try:
        with pytest.raises(CloudError):
            asyncio.run(client(grabber.url, request_timeout=3, total_timeout=20).run(request(ckpt)))
        assert grabber.seen and grabber.authorizations() == []
        monkeypatch.setenv("OBCLIP_CLOUD_URL", f"{cloud.url},{scoped.url}")
        with pytest.raises(CloudError, match="redirects are not followed"):
            asyncio.run(client(scoped.url, request_timeout=3, total_timeout=20).run(request(ckpt)))
        assert scoped.authorizations() == [f"Bearer {ALICE}"] and elsewhere.seen == []
    finally:
        for lst in (grabber, elsewhere, scoped):
            lst.stop()
    monkeypatch.setenv("OBCLIP_CLOUD_TOKEN", ALICE)
    monkeypatch.setenv("OBCLIP_CLOUD_URL", "http://cloud.example:8188")  # a non-loopback plain-http cloud
    with pytest.raises(CloudError, match="over plain http"):
        asyncio.run(client("http://cloud.example:8188").run(request(ckpt)))
    monkeypatch.setenv("OBCLIP_CLOUD_URL", cloud.url)
    assert asyncio.run(client(cloud.url).run(request(ckpt))).payload.latents.shape[0] == 2  # honest run


@pytest.fixture(scope="module")
def device(tmp_path_factory, cloud):
    base = prepare_base(tmp_path_factory.mktemp("tdevice"))
    lexicons = base / "lexicons"
    lexicons.mkdir()
    env = {"OBCLIP_CLOUD_TOKEN": ALICE, "OBCLIP_CLOUD_URL": cloud.url, "OBCLIP_LEXICON_DIR": str(lexicons),
           "OBCLIP_MINIWORLD": "0"}
    with ComfyServer("tdevice", base, env=env) as srv:
        srv.require_nodes("ObCLIPCandidateExpander")
        yield srv


def test_token_capture_through_the_probe_route_fails(device, cloud, ckpt):
    grabber = Listener().start_in_thread()
    try:
        status, answer = call(device.url, "GET", f"/obclip/probe?url={grabber.url}")
    finally:
        grabber.stop()
    assert status == 200 and answer["servers"][0].get("error"), answer
    assert grabber.seen and grabber.authorizations() == []
    # the honest probe of the token's own cloud: credentials accepted, the same checks as a run's preflight
    status, answer = call(device.url, "GET", f"/obclip/probe?url={cloud.url}")
    s = answer["servers"][0]
    assert status == 200 and s["reachable"] and "error" not in s, s
    assert s["pack"] is True and s["mode"] == "pack" and s["auth"] == "environment"
    assert ckpt.name in s["checkpoints"]
    # through a local reverse proxy (it adds X-Forwarded-For), or from another site's page: refused
    assert call(device.url, "GET", f"/obclip/probe?url={cloud.url}", headers={"X-Forwarded-For": "10.1.2.3"})[0] == 403
    assert call(device.url, "GET", f"/obclip/probe?url={cloud.url}", headers={"Origin": "http://evil.example"})[0] == 403


# ------------------------------------------------------------------ /obclip/expand: freeze and file probe

def test_expand_file_probe_fails(device, tmp_path):
    home_secret = Path.home() / ".config" / "obclip" / "secrets.json"
    answers = {}
    for preset in ("/etc/shadow", "/etc/passwd", "/nonexistent/x.json", str(home_secret), "../../etc/passwd",
                   "default.json"):
        answers[preset] = call(device.url, "POST", "/obclip/expand", body={"prompt": "a woman", "preset": preset})
    for preset, (status, body) in answers.items():
        assert status == 400 and body["error"].startswith("unknown preset"), (preset, status, body)
        assert body["error"].endswith("use one of default, paper or a lexicon NAME.json in OBCLIP_LEXICON_DIR")
    # an existing and a missing file give the same answer (no oracle)
    assert answers["/etc/passwd"][1]["error"].split("'")[2:] == answers["/nonexistent/x.json"][1]["error"].split("'")[2:]
    # the honest preview: a bundled preset
    status, body = call(device.url, "POST", "/obclip/expand",
                        body={"prompt": "portrait of a young woman", "preset": "default", "max_candidates": 40})
    assert status == 200 and body["n"] >= 2 and "portrait of a young woman" in body["candidates"]


def test_expand_freeze_fails(device):
    huge = {"prompt": "a young woman and an old man and a girl and a boy and a lady", "max_candidates": 10**9}
    assert call(device.url, "POST", "/obclip/expand", body=huge)[0] == 400
    assert call(device.url, "POST", "/obclip/expand", body={"prompt": "x" * 100_000})[0] == 400
    allowed = {**huge, "max_candidates": 256}
    answers: list = []

    def hammer():
        answers.append(call(device.url, "POST", "/obclip/expand", body=allowed)[0])
    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    # the server keeps answering while the previews run (each is off the event loop, capped and time-limited)
    assert call(device.url, "GET", "/prompt", timeout=5)[0] == 200
    for t in threads:
        t.join(60)
    assert answers and set(answers) <= {200, 429}, answers
    assert call(device.url, "POST", "/obclip/expand", body={"prompt": "a woman"},
                headers={"Origin": "http://evil.example"})[0] == 403
    assert call(device.url, "POST", "/obclip/expand", body={"prompt": "a woman"},
                headers={"X-Forwarded-For": "10.0.0.9"})[0] == 403
    assert call(device.url, "POST", "/obclip/expand", body={"prompt": "a woman"},
                headers={"Origin": device.url, "Sec-Fetch-Site": "same-origin"})[0] == 200


# ------------------------------------------------------------------ issue 23: the device's small leaks

def test_a_dns_rebinding_shaped_request_is_refused_by_the_device_routes(device):
    foreign = {"Host": f"evil.example:{device.port}", "Origin": f"http://evil.example:{device.port}"}
    status, answer = call(device.url, "POST", "/obclip/expand", body={"prompt": "a woman"}, headers=foreign)
    assert status == 403 and "Host header" in answer["error"], answer
    assert call(device.url, "GET", "/obclip/probe?url=http://127.0.0.1:9", headers=foreign)[0] == 403
    # the page of this server, by a loopback name, still gets its preview
    own = {"Host": f"localhost:{device.port}", "Origin": f"http://localhost:{device.port}"}
    assert call(device.url, "POST", "/obclip/expand", body={"prompt": "a woman"}, headers=own)[0] == 200


def test_lexicon_path_outside_the_lexicon_folder_is_refused_with_one_message(device):
    from obclip_nodes.harness.queue import WorkflowError, run_workflow
    home_secret = Path.home() / ".config" / "obclip" / "secrets.json"
    messages = {}
    for path in ("/etc/passwd", "/nonexistent/x.json", str(home_secret), "../../etc/passwd", "missing.json"):
        graph = {"1": {"class_type": "ObCLIPCandidateExpander", "inputs": {
                     "prompt": "portrait of a young woman", "preset": "default", "attributes": "",
                     "lexicon_path": path, "max_candidates": 32, "refuse_if_nothing_sensitive": False}},
                 "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
        with pytest.raises(WorkflowError) as e:
            run_workflow(device.url, graph, timeout=120)
        messages[path] = str(e.value).split(": ", 1)[1]
    assert len(set(messages.values())) == 1, messages  # an existing file and a missing one: the same answer
    assert "OBCLIP_LEXICON_DIR" in next(iter(messages.values()))

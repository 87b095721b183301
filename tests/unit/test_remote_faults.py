"""Faults a real ComfyUI cannot produce, against a toy ComfyUI on loopback; endpoints and secrets;
the server side's pieces (auth check, candidate count, result store)."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time

import pytest
import torch
from aiohttp import web
from safetensors.torch import save as st_save

from obclip_nodes.protocol import CloudRequest, Handoff, encode_payload_bytes
from obclip_nodes.protocol.payload import META_KEY, TENSOR_KEY
from obclip_nodes.remote import CloudError, RemoteSettings
from obclip_nodes.remote.client import CloudClient
from obclip_nodes.remote.endpoints import resolve, split_urls
from obclip_nodes.harness.loopback import ToyCloud
from obclip_nodes.cloud_server.auth import Principal, check_authorization, identify
from obclip_nodes.cloud_server.limits import BadRequest, count_candidates, parse_json_body
from obclip_nodes.cloud_server.results import ResultStore
from obclip_nodes.protocol import routes
from obclip_nodes.protocol.request import result_key_hash

REQ = CloudRequest(candidates=("a photo of a man", "a photo of a woman"), checkpoint="toy.safetensors",
                   width=64, height=64, steps=4, cloud_steps=2)
HANDOFF = Handoff(family="SD15", latent_format="SD15", scale_factor=0.18215, latent_channels=4, model_type="EPS",
                  sigma_min=0.0292, sigma_max=14.6146, steps=4, cloud_steps=2, sampler="euler",
                  scheduler="normal", seed=0, sigmas=(14.6, 3.0, 1.0, 0.3, 0.0), request_digest=REQ.digest())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for k in ("OBCLIP_CLOUD_TOKEN", "OBCLIP_CLOUD_BASIC", "OBCLIP_CLOUD_CA_FILE", "OBCLIP_STOCK_FALLBACK",
              "OBCLIP_CLOUD_URL", "OBCLIP_CLOUD_ALLOW_HTTP"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OBCLIP_SECRETS_FILE", "")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/obclip/secrets.json of the developer's


def run_against(toy: ToyCloud, **settings):
    async def go():
        async with toy:
            s = RemoteSettings(toy.url, **{"request_timeout": 2.0, "total_timeout": 5.0, **settings})
            return await CloudClient(s).run(REQ)
    return asyncio.run(go())


def good_payload(shape=(2, 4, 8, 8)):
    raw, _, rows = encode_payload_bytes(torch.randn(*shape), HANDOFF)
    return raw, rows


def test_a_good_toy_payload_is_accepted_and_deleted_after():
    toy = ToyCloud(payload=good_payload())
    r = run_against(toy)
    assert r.payload.latents.shape == (2, 4, 8, 8) and r.mode == "pack"
    assert r.bytes_received < r.payload.nbytes + 4096


@pytest.mark.parametrize("fault, message", [
    ("bad_sha", "checksum mismatch"),
    ("malformed", "not valid safetensors JSON"),
    ("truncated", "cut off|dropped the connection"),
    ("oversized", "over the .* byte limit"),
])
def test_bad_payloads_are_refused_with_a_clear_message(fault, message):
    with pytest.raises(CloudError, match=message):
        run_against(ToyCloud(fault, payload=good_payload()))


def test_wrong_latent_shape_is_refused():
    with pytest.raises(CloudError, match="latents of 16x16 but the request asked for 8x8"):
        run_against(ToyCloud(payload=good_payload((2, 4, 16, 16))))
    with pytest.raises(CloudError, match="returned 3 latent rows"):
        run_against(ToyCloud(payload=good_payload((3, 4, 8, 8))))


def test_a_payload_over_the_client_limit_is_not_downloaded():
    with pytest.raises(CloudError, match="over the 1000 byte limit"):
        run_against(ToyCloud(payload=good_payload()), max_payload_bytes=1000)


def test_node_errors_with_http_200_is_a_failure():
    with pytest.raises(CloudError, match="rejected the request: node 2 .*sampler_name: 'bogus'"):
        run_against(ToyCloud("node_errors_200", payload=good_payload()))


def test_websocket_stall_past_the_total_timeout_fails_and_cancels():
    toy = ToyCloud("ws_stall", payload=good_payload())
    t0 = time.monotonic()
    with pytest.raises(CloudError, match="did not finish within the total timeout of 2 s"):
        run_against(toy, total_timeout=2.0, stall_timeout=0.5)
    assert time.monotonic() - t0 < 6


def test_http_stall_past_the_request_timeout_fails():
    with pytest.raises(CloudError, match="did not answer GET /history/.* within 1 s"):
        run_against(ToyCloud("http_stall", payload=good_payload()), request_timeout=1.0, stall_timeout=0.3)


def test_tampered_handoff_inside_the_checksummed_payload_is_refused():
    raw = st_save({TENSOR_KEY: torch.randn(2, 4, 8, 8)}, metadata={META_KEY: json.dumps({"family": "SD15"})})
    with pytest.raises(CloudError, match="hand-off metadata lacks"):
        run_against(ToyCloud(payload=(raw, 2)))


# ---------------------------------------------------------------- endpoints and secrets

def test_several_urls_are_split_and_normalised():
    assert split_urls("http://a:1/, https://b/x/\nhttp://a:1") == ["http://a:1", "https://b/x"]
    with pytest.raises(ValueError, match="empty"):
        split_urls("  ")


def test_credentials_are_scoped_to_their_server(monkeypatch, tmp_path):
    secrets = tmp_path / "s.json"
    secrets.write_text(json.dumps({"servers": {"https://gpu:8443": {"token": "file-tok", "ca_file": "/ca.pem"},
                                               "10.0.0.5:8188": {"basic": "u:p", "allow_http": True}}}))
    monkeypatch.setenv("OBCLIP_SECRETS_FILE", str(secrets))
    e = resolve("https://gpu:8443/")
    assert e.headers == {"Authorization": "Bearer file-tok"} and e.ca_file == "/ca.pem"
    assert e.ws_base == "wss://gpu:8443" and e.auth_source == "secrets file entry https://gpu:8443"
    assert "file-tok" not in repr(e)
    # the same host on another scheme or port is another server: no credential
    assert resolve("http://gpu:8443").headers == {} and resolve("https://gpu:9443").headers == {}
    assert resolve("https://evil.example").headers == {}
    lan = resolve("http://10.0.0.5:8188")  # host:port entry with an explicit allow_http
    assert lan.headers == {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    # the environment's token goes only to OBCLIP_CLOUD_URL
    monkeypatch.setenv("OBCLIP_CLOUD_TOKEN", "env-tok")
    with pytest.raises(ValueError, match="OBCLIP_CLOUD_TOKEN is set but OBCLIP_CLOUD_URL is not"):
        resolve("https://other:1")
    monkeypatch.setenv("OBCLIP_CLOUD_URL", "https://other:1, http://127.0.0.1:8188")
    assert resolve("https://other:1/").headers == {"Authorization": "Bearer env-tok"}
    assert resolve("http://127.0.0.1:8188").headers == {"Authorization": "Bearer env-tok"}  # loopback http: fine
    assert resolve("https://other:2").headers == {} and resolve("https://evil.example").headers == {}
    assert resolve("https://gpu:8443").headers == {"Authorization": "Bearer file-tok"}  # the URL entry wins


def test_credentials_never_go_over_plain_http_to_another_host(monkeypatch, tmp_path):
    monkeypatch.setenv("OBCLIP_CLOUD_TOKEN", "env-tok")
    monkeypatch.setenv("OBCLIP_CLOUD_URL", "http://gpu.lan:8188")
    with pytest.raises(ValueError, match="refusing to send the credential for http://gpu.lan:8188 over plain http"):
        resolve("http://gpu.lan:8188")
    monkeypatch.setenv("OBCLIP_CLOUD_ALLOW_HTTP", "1")
    assert resolve("http://gpu.lan:8188").headers == {"Authorization": "Bearer env-tok"}
    secrets = tmp_path / "s.json"
    secrets.write_text(json.dumps({"default": {"token": "everywhere"}}))
    monkeypatch.setenv("OBCLIP_SECRETS_FILE", str(secrets))
    with pytest.raises(ValueError, match='"default" entry holds a credential'):
        resolve("https://anything")


def test_missing_ca_file_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("OBCLIP_CLOUD_CA_FILE", "/nonexistent/ca.pem")
    with pytest.raises(CloudError, match="CA file /nonexistent/ca.pem"):
        asyncio.run(CloudClient(RemoteSettings("https://127.0.0.1:9", request_timeout=1)).run(REQ))


# ---------------------------------------------------------------- server side

def test_token_check():
    assert check_authorization(None, "t") == 401
    assert check_authorization("Basic dTpw", "t") == 401
    assert check_authorization("Bearer nope", "t") == 403
    assert check_authorization("Bearer t", "t") is None
    assert check_authorization("bearer  t ", "t") is None
    tenants = {"op-token": ("operator", "operator"), "alice-token": ("client", "alice")}
    assert identify("Bearer alice-token", tenants) == (None, Principal("client", "alice"))
    assert identify("Bearer op-token", tenants)[1].role == "operator"
    assert identify("Bearer bob-token", tenants) == (403, None)


def test_candidate_count_of_a_prompt_body():
    from obclip_nodes.protocol import build_server_prompt
    assert count_candidates({"prompt": build_server_prompt(REQ)}) == 2
    assert count_candidates({"prompt": {"1": {"class_type": "KSampler", "inputs": {}}}}) == 0
    assert count_candidates({"prompt": "garbage"}) == 0


def test_result_store_expires_and_bounds_bytes():
    store = ResultStore(ttl_s=0.05, max_bytes=10)
    store.put("a", b"12345", result_key_hash("ka"))
    store.put("b", b"123456", result_key_hash("kb"))  # over 10 bytes together: the oldest goes
    assert store.take("a", "ka") is None and len(store) == 1
    time.sleep(0.06)
    assert store.take("b", "kb") is None and len(store) == 0
    with pytest.raises(ValueError, match="exceeds"):
        store.put("c", b"x" * 11, result_key_hash("kc"))


def test_result_store_hands_a_result_once_to_the_holder_of_its_key():
    store = ResultStore()
    store.put("p", b"latents", result_key_hash("secret"), "alice")
    assert store.take("p", "guess") is None            # wrong key: same answer as no result
    assert store.take("p", "secret", "bob") is None    # right key, other tenant
    assert store.discard("p", "guess") is False and len(store) == 1
    assert store.take("p", "secret", "alice") == b"latents"
    assert store.take("p", "secret", "alice") is None  # deleted on the first successful fetch
    # a client that gave up before its result existed: the result is dropped when it arrives
    assert store.discard("q", "s2") is False
    assert store.put("q", b"late", result_key_hash("s2")) is False and len(store) == 0
    assert store.put("q", b"late", result_key_hash("s2")) is True  # the tombstone is used once


def test_strict_json_bodies():
    assert parse_json_body(b'{"a": [1, 2]}') == {"a": [1, 2]}
    for raw, message in ((b"", "empty"), (b"\xff\xfe{}", "not UTF-8"), (b'{"cfg": NaN}', "NaN is not valid"),
                         (b"[" * 100000 + b"]" * 100000, "nests too deeply"), (b"[" * 70 + b"]" * 70, "nests too deeply"),
                         (b"{bad", "not valid JSON")):
        with pytest.raises(BadRequest, match=message):
            parse_json_body(raw)


def test_request_limits():
    from obclip_nodes.cloud_server.limits import Limits
    lim = Limits(max_candidates=4, max_steps=10, max_pixels=64 * 64, max_prompt_chars=20)
    lim.check(REQ)
    for change, message in (({"candidates": tuple(f"p{i}" for i in range(5))}, "at most 4 ObCLIP candidates"),
                            ({"steps": 11}, "at most 10 steps"), ({"width": 72}, "at most 4096 pixels"),
                            ({"negative": "x" * 21}, "the negative prompt is 21 characters")):
        with pytest.raises(BadRequest, match=message):
            lim.check(dataclasses.replace(REQ, **change))


class DripCloud(ToyCloud):
    """Serves a good payload one byte at a time, slower than any total timeout; records the clean-up."""

    def __init__(self, *a, **kw):
        self.cleanup: list = []
        super().__init__(*a, **kw)

    async def ok(self, request):  # ToyCloud's POST /queue, POST /interrupt and DELETE of the result
        self.cleanup.append((request.method, request.path, request.headers.get(routes.RESULT_KEY_HEADER),
                             await request.read()))
        return web.json_response({})

    async def result(self, request):
        raw = self._bytes()
        resp = web.StreamResponse(headers={"Content-Length": str(len(raw))})
        await resp.prepare(request)
        for i in range(len(raw)):
            await resp.write(raw[i:i + 1])
            await asyncio.sleep(0.05)
        return resp


def test_total_timeout_holds_during_a_slow_download_and_the_client_cleans_up():
    toy = DripCloud(payload=good_payload())
    t0 = time.monotonic()
    with pytest.raises(CloudError, match="total timeout of 2 s \\(download included\\)"):
        run_against(toy, total_timeout=2.0, request_timeout=1.0)
    assert time.monotonic() - t0 < 8  # not the ~100 s the drip would take
    post = toy.posts[0]
    secret_hash = post["prompt"]["3"]["inputs"]["result_key_sha256"]
    methods = [(m, p) for m, p, _, _ in toy.cleanup]
    assert methods == [("POST", "/queue"), ("POST", "/interrupt"), ("DELETE", f"/obclip/result/{toy.prompt_id}")]
    assert json.loads(toy.cleanup[0][3]) == {"delete": [toy.prompt_id]}
    assert json.loads(toy.cleanup[1][3]) == {"prompt_id": toy.prompt_id}
    key = toy.cleanup[2][2]
    assert key and result_key_hash(key) == secret_hash  # the delete proves it is ours


def test_a_result_for_another_request_is_refused():
    other = dataclasses.replace(HANDOFF, request_digest=dataclasses.replace(REQ, seed=1).digest())
    raw, _, rows = encode_payload_bytes(torch.randn(2, 4, 8, 8), other)
    with pytest.raises(CloudError, match="computed for a different request"):
        run_against(ToyCloud(payload=(raw, rows)))


def test_default_limits_apply_on_a_cloud_and_explicit_ones_everywhere():
    from obclip_nodes import config
    from obclip_nodes.cloud_server.limits import Limits
    cloud = Limits.from_settings(config.settings({}), cloud=True)
    assert (cloud.max_candidates, cloud.max_steps, cloud.max_pixels, cloud.max_body_bytes) == (256, 150, 1 << 20, 4 << 20)
    own = Limits.from_settings(config.settings({"OBCLIP_SERVER_MAX_STEPS": "40"}), cloud=False)
    assert own.max_steps == 40 and own.max_candidates is None and own.max_body_bytes is None
    own.check(dataclasses.replace(REQ, width=4096, height=4096))  # no default size cap on one's own server
    with pytest.raises(BadRequest, match="at most 40 steps"):
        own.check(dataclasses.replace(REQ, steps=41, cloud_steps=2))


def test_a_run_lost_behind_a_balancer_is_retried_with_the_same_public_request_and_fresh_ids():
    toy = ToyCloud("balancer_503_once", payload=good_payload())
    r = run_against(toy, total_timeout=20.0)
    assert r.payload.latents.shape == (2, 4, 8, 8)
    assert len(r.retried) == 1 and "load balancer" in r.retried[0][1] and "HTTP 503" in r.retried[0][1]
    assert "is this a ComfyUI server" not in r.retried[0][1]
    first, second = toy.posts
    assert first["prompt_id"] != second["prompt_id"] and first["client_id"] != second["client_id"]
    def public(post):  # the graph without the per-attempt random result key
        graph = json.loads(json.dumps(post["prompt"]))
        graph["3"]["inputs"].pop("result_key_sha256")
        return graph
    assert public(first) == public(second)

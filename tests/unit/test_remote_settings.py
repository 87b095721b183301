from __future__ import annotations

import pytest

from obclip_nodes.acceleration import AccelerationSettings
from obclip_nodes.remote import CloudError, RemoteSettings


def test_urls_and_websocket_urls():
    assert RemoteSettings("http://h:8188/").base() == "http://h:8188"
    assert RemoteSettings("https://h/comfy/").ws_base() == "wss://h/comfy"
    with pytest.raises(CloudError, match="http://host:port"):
        RemoteSettings("ftp://h").base()
    with pytest.raises(CloudError, match="http://host:port"):
        RemoteSettings("127.0.0.1:8188").base()


def test_token_comes_from_the_environment_only_for_its_own_server(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("OBCLIP_CLOUD_TOKEN", "OBCLIP_CLOUD_URL", "OBCLIP_SECRETS_FILE", "OBCLIP_CLOUD_ALLOW_HTTP"):
        monkeypatch.delenv(k, raising=False)
    assert RemoteSettings("https://h").headers() == {}
    monkeypatch.setenv("OBCLIP_CLOUD_TOKEN", "s3cret")
    monkeypatch.setenv("OBCLIP_CLOUD_URL", "https://h")
    assert RemoteSettings("https://h").headers() == {"Authorization": "Bearer s3cret"}
    assert RemoteSettings("https://other").headers() == {}


def test_acceleration_settings_validate_and_report_honestly():
    s = AccelerationSettings.from_dict({"batch_reuse": True, "block_skip": True})
    assert s.requested == ("batch_reuse", "block_skip")
    assert s.applied == ("batch_reuse", "block_skip")  # the report names exactly what ran
    with pytest.raises(ValueError, match="unknown acceleration"):
        AccelerationSettings.from_dict({"turbo": True})
    with pytest.raises(ValueError, match="true or false"):
        AccelerationSettings.from_dict({"batch_reuse": "yes"})
    with pytest.raises(ValueError, match="refresh_every"):
        AccelerationSettings.from_dict({"refresh_every": 0})

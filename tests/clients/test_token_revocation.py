"""Tokens stop working when revoked and when they expire: used as
X-Auth-Token they get 401, on validation (X-Subject-Token) 404."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

SHORT_EXPIRATION_S = 5


def status_of(url: str, headers: dict) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def identity_url(region) -> str:
    return region.admin_cloud()["auth"]["auth_url"].rstrip("/")


def admin_token(region) -> str:
    return region.cli_json("token", "issue", config=region.clouds_yaml)["id"]


def assert_token_refused(region, token: str) -> None:
    url = identity_url(region)
    assert status_of(f"{url}/auth/projects", {"X-Auth-Token": token}) == 401
    assert status_of(f"{url}/projects", {"X-Auth-Token": token}) == 401
    checker = admin_token(region)
    assert status_of(f"{url}/auth/tokens", {"X-Auth-Token": checker, "X-Subject-Token": token}) == 404


def test_revoked_token_is_refused(region):
    token = region.cli_json("token", "issue")["id"]
    url = identity_url(region)
    assert status_of(f"{url}/auth/projects", {"X-Auth-Token": token}) == 200

    region.cli_ok("token", "revoke", token)
    assert_token_refused(region, token)
    # other tokens of the same user still work
    assert status_of(f"{url}/auth/projects", {"X-Auth-Token": admin_token(region)}) == 200


def test_token_revoked_with_the_sdk_is_refused(region):
    conn = region.sdk()
    token = region.cli_json("token", "issue")["id"]
    resp = conn.identity.delete("/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=False)
    assert resp.status_code == 204, resp.text
    assert_token_refused(region, token)


def test_expired_token_is_refused(new_region, monkeypatch, tmp_path):
    config = tmp_path / "himmel.toml"
    config.write_text(f"token_expiration = {SHORT_EXPIRATION_S}\n")
    # the server's --config option, set through its environment variable
    # because the fixture starts the server
    monkeypatch.setenv("HIMMEL_CONFIG", str(config))
    region = new_region()
    region.spawn()
    region.wait_healthy()

    issued = region.cli_json("token", "issue", config=region.clouds_yaml)
    expires = datetime.fromisoformat(issued["expires"].replace("Z", "+00:00"))
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    lifetime = (expires - datetime.now(timezone.utc)).total_seconds()
    assert 0 < lifetime <= SHORT_EXPIRATION_S + 1, f"token lives {lifetime:.1f}s, configured {SHORT_EXPIRATION_S}s"

    url = identity_url(region)
    assert status_of(f"{url}/auth/projects", {"X-Auth-Token": issued["id"]}) == 200
    time.sleep(lifetime + 1.5)
    assert status_of(f"{url}/auth/projects", {"X-Auth-Token": issued["id"]}) == 401
    checker = region.cli_json("token", "issue", config=region.clouds_yaml)["id"]
    assert status_of(f"{url}/auth/tokens", {"X-Auth-Token": checker, "X-Subject-Token": issued["id"]}) == 404

    # the refusal is Keystone's JSON error
    request = urllib.request.Request(f"{url}/auth/projects", headers={"X-Auth-Token": issued["id"]})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("an expired token was accepted")
    except urllib.error.HTTPError as e:
        error = json.loads(e.read())["error"]
    assert error["code"] == 401, error

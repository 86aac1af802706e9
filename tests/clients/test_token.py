"""A fresh region issues tokens at once, to the clients' own configuration."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import yaml

START_BUDGET_S = 2.0
GIVE_UP_S = 30.0


def password_auth_body(auth: dict) -> dict:
    """The POST /v3/auth/tokens body for a clouds.yaml `auth` section."""

    def named(prefix: str) -> dict:
        if auth.get(f"{prefix}_id"):
            return {"id": auth[f"{prefix}_id"]}
        return {"name": auth.get(f"{prefix}_name", "Default")}

    user = {"name": auth["username"], "password": auth["password"], "domain": named("user_domain")}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
    if auth.get("project_id"):
        body["auth"]["scope"] = {"project": {"id": auth["project_id"]}}
    elif auth.get("project_name"):
        body["auth"]["scope"] = {"project": {"name": auth["project_name"], "domain": named("project_domain")}}
    return body


def try_issue_token(clouds_yaml) -> bool:
    try:
        auth = yaml.safe_load(clouds_yaml.read_text())["clouds"]["himmel"]["auth"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return False  # not written yet, or written half
    request = urllib.request.Request(
        auth["auth_url"].rstrip("/") + "/auth/tokens",
        data=json.dumps(password_auth_body(auth)).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            return resp.status == 201 and bool(resp.headers.get("X-Subject-Token"))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def test_first_token_within_two_seconds_of_start(new_region):
    region = new_region()
    region.spawn()
    elapsed = None
    while time.monotonic() - region.started_at < GIVE_UP_S:
        region.assert_running()
        if try_issue_token(region.clouds_yaml):
            elapsed = time.monotonic() - region.started_at
            break
        time.sleep(0.01)
    assert elapsed is not None, f"no token within {GIVE_UP_S}s of start\n{region.log_tail()}"
    assert elapsed < START_BUDGET_S, f"first token {elapsed:.2f}s after start (budget {START_BUDGET_S}s)"


def test_cli_token_issue_with_generated_clouds_yaml(region):
    token = region.cli_json("token", "issue", config=region.clouds_yaml)
    assert token["id"], token
    assert token["user_id"] and token["project_id"], token
    assert token["expires"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), token


def test_revoked_token_no_longer_validates(region):
    conn = region.sdk()
    token = region.cli_json("token", "issue")["id"]
    resp = conn.identity.get("/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=False)
    assert resp.status_code == 200, resp.text

    region.cli_ok("token", "revoke", token)
    resp = conn.identity.get("/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=False)
    assert resp.status_code == 404, resp.text


def test_sdk_token_validates(region):
    conn = region.sdk()
    token = conn.authorize()
    assert token
    # GET /v3/auth/tokens with X-Subject-Token: the token describes its own owner
    resp = conn.identity.get("/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=False)
    assert resp.status_code == 200, resp.text
    body = resp.json()["token"]
    assert body["user"]["id"] == conn.current_user_id
    assert body["project"]["id"] == conn.current_project_id
    assert any(role["name"] == "admin" for role in body["roles"]), body["roles"]

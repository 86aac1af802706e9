"""A user with a TOTP secret and a password+totp rule needs both factors:
the password alone no longer gets a token, password and passcode do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
import time
import urllib.error
import urllib.request

from test_identity_admin import create_tenant, user_cloud

STEP_S = 30


def passcode(secret_b32: str, at: float | None = None) -> str:
    """The RFC 6238 passcode an authenticator app shows (SHA-1, 30 s, 6 digits)."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // STEP_S)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{code % 1_000_000:06d}"


def test_passcode_matches_rfc_6238_vector():
    # RFC 6238 appendix B, SHA-1, T = 59 s (the last 6 of 94287082)
    assert passcode(base64.b32encode(b"12345678901234567890").decode(), at=59) == "287082"


def mfa_user(region, unique: str) -> tuple[dict, str, str]:
    """A project member with a TOTP secret and the rule password+totp."""
    t = create_tenant(region, unique)
    region.cli_ok("role", "add", "--project", t["project_id"], "--user", t["user_id"], "member")
    secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
    cred = region.cli_json("credential", "create", "--type", "totp", t["user_id"], secret)
    assert cred["type"] == "totp" and cred["user_id"] == t["user_id"], cred
    region.cli_ok("user", "set", "--multi-factor-auth-rule", "password,totp", "--enable-multi-factor-auth",
                  t["user_id"])
    return t, user_cloud(region, t), secret


def post_password_auth(region, t: dict):
    """POST /v3/auth/tokens with the password only; the status and headers."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": t["user_id"], "password": t["password"]}}}}}
    request = urllib.request.Request(region.admin_cloud()["auth"]["auth_url"].rstrip("/") + "/auth/tokens",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def multifactor_args(secret: str) -> list[str]:
    return ["--os-auth-type", "v3multifactor", "--os-auth-methods", "v3password,v3totp",
            "--os-passcode", passcode(secret)]


def test_password_alone_is_refused_once_totp_is_required(region, unique):
    t, cloud, secret = mfa_user(region, unique)
    user = region.cli_json("user", "show", t["user_id"])
    assert user["options"]["multi_factor_auth_enabled"] is True, user
    assert user["options"]["multi_factor_auth_rules"] == [["password", "totp"]], user

    done = region.cli("token", "issue", cloud=cloud)
    assert done.returncode != 0, done.stdout
    assert "Not all required auth rules were satisfied: [['password', 'totp']]" in done.stderr, done.stderr
    # on the wire: 401 with an auth receipt that a second request can complete
    status, headers = post_password_auth(region, t)
    assert status == 401 and headers.get("Openstack-Auth-Receipt"), (status, dict(headers))

    token = region.cli_json(*multifactor_args(secret), "token", "issue", cloud=cloud)
    assert token["user_id"] == t["user_id"] and token["project_id"] == t["project_id"], token
    validated = region.sdk().identity.get("/auth/tokens", headers={"X-Subject-Token": token["id"]}).json()
    assert sorted(validated["token"]["methods"]) == ["password", "totp"], validated["token"]["methods"]


def test_wrong_passcode_is_refused(region, unique):
    t, cloud, secret = mfa_user(region, unique)
    good = passcode(secret)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    done = region.cli("--os-auth-type", "v3multifactor", "--os-auth-methods", "v3password,v3totp",
                      "--os-passcode", wrong, "token", "issue", cloud=cloud)
    assert done.returncode != 0 and "401" in done.stderr, done.stderr


def test_disabling_the_rule_restores_password_login(region, unique):
    t, cloud, _ = mfa_user(region, unique)
    assert region.cli("token", "issue", cloud=cloud).returncode != 0
    region.cli_ok("user", "set", "--disable-multi-factor-auth", t["user_id"])
    token = region.cli_json("token", "issue", cloud=cloud)
    assert token["user_id"] == t["user_id"], token

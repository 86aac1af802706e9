"""A user hands an application credential to a program: the program logs in
with it (openstack CLI and openstacksdk), gets only the roles it was given,
and is locked out once the credential is deleted."""

from __future__ import annotations

import pytest
import yaml

from test_identity_admin import create_tenant, user_cloud


def add_app_cred_cloud(region, name: str, cred: dict) -> str:
    """A clouds.yaml entry that logs in with an application credential only
    (`cred` as `openstack application credential create -f json` prints it)."""
    admin = region.admin_cloud()
    config = {"clouds": {"himmel": admin}}
    if region.clients_yaml.is_file():
        config = yaml.safe_load(region.clients_yaml.read_text())
    config["clouds"][name] = {
        "auth_type": "v3applicationcredential",
        "auth": {
            "auth_url": admin["auth"]["auth_url"],
            "application_credential_id": cred["ID"],
            "application_credential_secret": cred["Secret"],
        },
        "identity_api_version": 3,
        "region_name": admin.get("region_name", "RegionOne"),
    }
    region.clients_yaml.write_text(yaml.safe_dump(config))
    return name


def member_tenant(region, unique: str) -> tuple[dict, str]:
    t = create_tenant(region, unique)
    region.cli_ok("role", "add", "--project", t["project_id"], "--user", t["user_id"], "member")
    return t, user_cloud(region, t)


def token_roles(region, token: str) -> set[str]:
    """The role names in `token`, as the administrator sees them on validation."""
    resp = region.sdk().identity.get("/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=False)
    assert resp.status_code == 200, resp.text
    return {r["name"] for r in resp.json()["token"]["roles"]}


def test_app_credential_logs_in_with_cli_and_sdk(region, unique):
    t, cloud = member_tenant(region, unique)
    secret = f"app-secret-{unique}"
    cred = region.cli_json("application", "credential", "create", "--secret", secret,
                           "--description", "for a program", f"app-{unique}", cloud=cloud)
    assert cred["Name"] == f"app-{unique}" and cred["Project ID"] == t["project_id"], cred
    assert cred["Secret"] == secret, "the secret is shown once, on creation"
    assert cred["Unrestricted"] is False, cred
    shown = region.cli_json("application", "credential", "show", f"app-{unique}", cloud=cloud)
    assert shown["ID"] == cred["ID"] and not shown.get("Secret"), shown
    listed = region.cli_json("application", "credential", "list", cloud=cloud)
    assert [c["ID"] for c in listed] == [cred["ID"]], listed

    app = add_app_cred_cloud(region, f"app-{unique}", cred)
    token = region.cli_json("token", "issue", cloud=app)
    assert token["user_id"] == t["user_id"] and token["project_id"] == t["project_id"], token
    project = region.cli_json("project", "show", t["project_id"], cloud=app)
    assert project["name"] == t["project"], project
    # it carries the roles the user had when creating it (member and the reader it implies)
    assert token_roles(region, token["id"]) == {"member", "reader"}

    conn = region.sdk(app)
    assert conn.authorize()
    assert conn.current_user_id == t["user_id"] and conn.current_project_id == t["project_id"]
    assert conn.identity.get_project(t["project_id"]).name == t["project"]


def test_restricted_app_credential_has_only_its_roles(region, unique):
    t, cloud = member_tenant(region, unique)
    cred = region.cli_json("application", "credential", "create", "--role", "reader", f"ro-{unique}", cloud=cloud)
    assert [r["name"] for r in cred["Roles"]] == ["reader"], cred["Roles"]

    app = add_app_cred_cloud(region, f"ro-{unique}", cred)
    token = region.cli_json("token", "issue", cloud=app)
    assert token_roles(region, token["id"]) == {"reader"}
    # the user's own password token still has everything
    own = region.cli_json("token", "issue", cloud=cloud)
    assert token_roles(region, own["id"]) == {"member", "reader"}

    # a role the user does not hold cannot be delegated
    done = region.cli("application", "credential", "create", "--role", "admin", f"escalate-{unique}", cloud=cloud)
    assert done.returncode != 0, done.stdout
    # a restricted credential cannot mint further credentials
    done = region.cli("application", "credential", "create", f"child-{unique}", cloud=app)
    assert done.returncode != 0 and "403" in done.stderr, done.stderr


def test_deleted_app_credential_no_longer_logs_in(region, unique):
    import openstack.exceptions

    _, cloud = member_tenant(region, unique)
    cred = region.cli_json("application", "credential", "create", f"gone-{unique}", cloud=cloud)
    app = add_app_cred_cloud(region, f"gone-{unique}", cred)
    region.cli_json("token", "issue", cloud=app)

    region.cli_ok("application", "credential", "delete", f"gone-{unique}", cloud=cloud)
    assert region.cli_json("application", "credential", "list", cloud=cloud) == []
    done = region.cli("token", "issue", cloud=app)
    assert done.returncode != 0 and "401" in done.stderr, done.stderr
    with pytest.raises(openstack.exceptions.SDKException, match=r"HTTP 401"):
        region.sdk(app).authorize()


def test_wrong_app_credential_secret_is_refused(region, unique):
    _, cloud = member_tenant(region, unique)
    cred = region.cli_json("application", "credential", "create", f"wrong-{unique}", cloud=cloud)
    app = add_app_cred_cloud(region, f"wrong-{unique}", {"ID": cred["ID"], "Secret": cred["Secret"] + "x"})
    done = region.cli("token", "issue", cloud=app)
    assert done.returncode != 0 and "401" in done.stderr, done.stderr

"""An administrator sets up a tenant; its user works in it, and only there."""

from __future__ import annotations

import pytest


def test_admin_lists_its_own_project(region):
    token = region.cli_json("token", "issue", config=region.clouds_yaml)
    admin = region.admin_cloud()["auth"]
    projects = region.cli_json("project", "list")
    assert any(p["ID"] == token["project_id"] and p["Name"] == admin["project_name"] for p in projects), projects


def create_tenant(region, unique: str) -> dict:
    """Domain, project, user and group created with the openstack CLI, the
    user added to the group. Returns the names and ids."""
    t = {
        "domain": f"dom-{unique}",
        "project": f"proj-{unique}",
        "user": f"user-{unique}",
        "group": f"group-{unique}",
        "password": f"pw-{unique}-Secret!",
    }
    domain = region.cli_json("domain", "create", "--description", "client test", t["domain"])
    assert domain["name"] == t["domain"] and domain["enabled"] is True, domain
    t["domain_id"] = domain["id"]

    project = region.cli_json("project", "create", "--domain", t["domain"], t["project"])
    assert project["name"] == t["project"] and project["domain_id"] == t["domain_id"], project
    t["project_id"] = project["id"]

    user = region.cli_json("user", "create", "--domain", t["domain"], "--password", t["password"], t["user"])
    assert user["name"] == t["user"] and user["domain_id"] == t["domain_id"], user
    assert "password" not in user, "the password must never be shown"
    t["user_id"] = user["id"]

    group = region.cli_json("group", "create", "--domain", t["domain"], t["group"])
    assert group["name"] == t["group"] and group["domain_id"] == t["domain_id"], group
    t["group_id"] = group["id"]

    region.cli_ok("group", "add", "user", "--group-domain", t["domain"], "--user-domain", t["domain"],
                  t["group"], t["user"])
    members = region.cli_json("user", "list", "--group", t["group_id"])
    assert [m["ID"] for m in members] == [t["user_id"]], members
    done = region.cli("group", "contains", "user", "--group-domain", t["domain"], "--user-domain", t["domain"],
                      t["group"], t["user"])
    assert done.returncode == 0 and done.stdout.strip() == f"{t['user']} in group {t['group']}", done
    return t


def user_cloud(region, t: dict) -> str:
    return region.add_user_cloud(f"user-{t['user']}", username=t["user"], password=t["password"],
                                 domain=t["domain"], project=t["project"])


def assert_forbidden(done) -> None:
    assert done.returncode != 0, f"expected a refusal, got success: {done.stdout}"
    assert "403" in done.stderr, done.stderr


def test_admin_creates_tenant_and_member_works_in_it(region, unique):
    t = create_tenant(region, unique)
    region.cli_ok("role", "add", "--project", t["project"], "--project-domain", t["domain"],
                  "--user", t["user"], "--user-domain", t["domain"], "member")
    assignments = region.cli_json("role", "assignment", "list", "--user", t["user_id"], "--names")
    assert any(a["Role"] == "member" and a["Project"].startswith(t["project"]) for a in assignments), assignments

    cloud = user_cloud(region, t)
    token = region.cli_json("token", "issue", cloud=cloud)
    assert token["user_id"] == t["user_id"] and token["project_id"] == t["project_id"], token

    projects = region.cli_json("project", "list", "--my-projects", cloud=cloud)
    assert [(p["ID"], p["Name"]) for p in projects] == [(t["project_id"], t["project"])], projects

    assert_forbidden(region.cli("user", "create", "--domain", t["domain"], "--password", "x-Secret-1",
                                f"intruder-{unique}", cloud=cloud))
    assert_forbidden(region.cli("project", "create", "--domain", t["domain"], f"other-{unique}", cloud=cloud))
    # the refused user was not created after all
    names = [u["Name"] for u in region.cli_json("user", "list", "--domain", t["domain"])]
    assert names == [t["user"]], names


def test_role_through_group_grants_project_access(region, unique):
    t = create_tenant(region, unique)
    cloud = user_cloud(region, t)
    before = region.cli("token", "issue", cloud=cloud)
    assert before.returncode != 0, "a user without a role on the project must not get a token scoped to it"

    region.cli_ok("role", "add", "--project", t["project"], "--project-domain", t["domain"],
                  "--group", t["group"], "--group-domain", t["domain"], "member")
    token = region.cli_json("token", "issue", cloud=cloud)
    assert token["project_id"] == t["project_id"], token
    effective = region.cli_json("role", "assignment", "list", "--effective", "--user", t["user_id"], "--names")
    assert any(a["Role"] == "member" and a["Project"].startswith(t["project"]) for a in effective), effective


def test_wrong_password_is_refused(region, unique):
    t = create_tenant(region, unique)
    region.cli_ok("role", "add", "--project", t["project"], "--project-domain", t["domain"],
                  "--user", t["user"], "--user-domain", t["domain"], "member")
    cloud = region.add_user_cloud(f"bad-{unique}", username=t["user"], password="not-the-password",
                                  domain=t["domain"], project=t["project"])
    done = region.cli("token", "issue", cloud=cloud)
    assert done.returncode != 0 and "401" in done.stderr, done.stderr


def test_sdk_admin_flow(region, unique):
    import openstack.exceptions

    admin = region.sdk()
    domain = admin.identity.create_domain(name=f"sdkdom-{unique}")
    project = admin.identity.create_project(name=f"sdkproj-{unique}", domain_id=domain.id)
    password = f"pw-{unique}-Sdk!"
    user = admin.identity.create_user(name=f"sdkuser-{unique}", domain_id=domain.id, password=password)
    group = admin.identity.create_group(name=f"sdkgroup-{unique}", domain_id=domain.id)
    admin.identity.add_user_to_group(user, group)
    assert admin.identity.check_user_in_group(user, group)
    member = admin.identity.find_role("member", ignore_missing=False)
    admin.identity.assign_project_role_to_user(project, user, member)
    assert admin.identity.validate_user_has_project_role(project, user, member)

    region.add_user_cloud(f"sdk-{unique}", username=user.name, password=password, domain=domain.name,
                          project=project.name)
    conn = region.sdk(f"sdk-{unique}")
    assert conn.authorize()
    assert conn.current_user_id == user.id and conn.current_project_id == project.id
    assert [p.id for p in conn.identity.user_projects(user.id)] == [project.id]

    with pytest.raises(openstack.exceptions.ForbiddenException):
        conn.identity.create_user(name=f"sdkintruder-{unique}", domain_id=domain.id, password="x-Secret-1")
    with pytest.raises(openstack.exceptions.ForbiddenException):
        conn.identity.delete_project(project.id)
    assert admin.identity.get_project(project.id).name == project.name

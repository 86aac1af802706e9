"""A domain manager runs the users of their own domain with the openstack
CLI, and nothing outside it: no other domain, no admin role."""

from __future__ import annotations

import re

import yaml

from test_identity_admin import assert_forbidden


def add_domain_cloud(region, name: str, *, username: str, password: str, domain: str) -> str:
    """A clouds.yaml entry scoped to a domain (not a project)."""
    admin = region.admin_cloud()
    config = {"clouds": {"himmel": admin}}
    if region.clients_yaml.is_file():
        config = yaml.safe_load(region.clients_yaml.read_text())
    config["clouds"][name] = {
        "auth": {
            "auth_url": admin["auth"]["auth_url"],
            "username": username,
            "password": password,
            "user_domain_name": domain,
            "domain_name": domain,
        },
        "identity_api_version": 3,
        "region_name": admin.get("region_name", "RegionOne"),
    }
    region.clients_yaml.write_text(yaml.safe_dump(config))
    return name


def two_domains_and_a_manager(region, unique: str) -> dict:
    s = {"a": f"dma-{unique}", "b": f"dmb-{unique}", "manager": f"mgr-{unique}", "password": f"pw-{unique}-Mgr!"}
    s["a_id"] = region.cli_json("domain", "create", s["a"])["id"]
    s["b_id"] = region.cli_json("domain", "create", s["b"])["id"]
    s["project_id"] = region.cli_json("project", "create", "--domain", s["a_id"], f"app-{unique}")["id"]
    s["manager_id"] = region.cli_json("user", "create", "--domain", s["a_id"], "--password", s["password"],
                                      s["manager"])["id"]
    region.cli_ok("role", "add", "--domain", s["a_id"], "--user", s["manager_id"], "manager")
    s["cloud"] = add_domain_cloud(region, f"mgr-{unique}", username=s["manager"], password=s["password"],
                                  domain=s["a"])
    return s


def test_domain_manager_token_is_domain_scoped(region, unique):
    s = two_domains_and_a_manager(region, unique)
    token = region.cli_json("token", "issue", cloud=s["cloud"])
    assert token["domain_id"] == s["a_id"] and not token.get("project_id"), token
    assert token["user_id"] == s["manager_id"], token


def test_domain_manager_manages_users_of_its_domain(region, unique):
    s = two_domains_and_a_manager(region, unique)
    cloud = s["cloud"]
    name = f"staff-{unique}"
    user = region.cli_json("user", "create", "--domain", s["a_id"], "--password", f"pw-{unique}-Staff!",
                           "--email", "staff@example.org", name, cloud=cloud)
    assert user["domain_id"] == s["a_id"] and user["name"] == name, user

    region.cli_ok("user", "set", "--description", "on the night shift", user["id"], cloud=cloud)
    shown = region.cli_json("user", "show", user["id"], cloud=cloud)
    assert shown["description"] == "on the night shift", shown

    region.cli_ok("role", "add", "--project", s["project_id"], "--user", user["id"], "member", cloud=cloud)
    granted = region.cli_json("role", "assignment", "list", "--user", user["id"], "--names")
    assert [(a["Role"], a["Project"].split("@")[0]) for a in granted] == [("member", f"app-{unique}")], granted

    # the new user can work in the project
    region.add_user_cloud(f"staff-{unique}", username=name, password=f"pw-{unique}-Staff!", domain=s["a"],
                          project=f"app-{unique}")
    assert region.cli_json("token", "issue", cloud=f"staff-{unique}")["project_id"] == s["project_id"]

    region.cli_ok("user", "delete", user["id"], cloud=cloud)
    assert region.cli("user", "show", user["id"]).returncode != 0, "the user must be gone"


def test_domain_manager_is_refused_outside_its_domain_and_admin(region, unique):
    s = two_domains_and_a_manager(region, unique)
    cloud = s["cloud"]
    assert_forbidden(region.cli("user", "create", "--domain", s["b_id"], "--password", f"pw-{unique}-X!",
                                f"intruder-{unique}", cloud=cloud))
    assert region.cli_json("user", "list", "--domain", s["b_id"]) == [], "nothing was created in B"

    user_id = region.cli_json("user", "create", "--domain", s["a_id"], "--password", f"pw-{unique}-Y!",
                              f"worker-{unique}", cloud=cloud)["id"]
    assert_grant_refused(region.cli("--debug", "role", "add", "--project", s["project_id"], "--user", user_id,
                                    "admin", cloud=cloud))
    assert_grant_refused(region.cli("--debug", "role", "add", "--domain", s["a_id"], "--user", user_id, "admin",
                                    cloud=cloud))
    assert region.cli_json("role", "assignment", "list", "--user", user_id) == [], "no role was granted"

    # nor may it raise itself to admin, or create domains
    assert_grant_refused(region.cli("--debug", "role", "add", "--domain", s["a_id"], "--user", s["manager_id"],
                                    "admin", cloud=cloud))
    roles = {a["Role"] for a in region.cli_json("role", "assignment", "list", "--user", s["manager_id"], "--names")}
    assert roles == {"manager"}, roles
    assert_forbidden(region.cli("domain", "create", f"dmc-{unique}", cloud=cloud))


def assert_grant_refused(done) -> None:
    """`openstack role add` exits 0 even when the server refuses the grant
    (openstacksdk's assign_*_role_to_* return False instead of raising), so
    read the server's answer to the PUT from the --debug output."""
    answers, status = [], None
    for line in done.stderr.splitlines():
        if m := re.match(r"RESP: \[(\d{3})\]", line):
            status = m.group(1)
        elif re.match(r"PUT call to identity for \S+/roles/\S+ used request id", line):
            answers.append(status)
    assert answers == ["403"], f"the grant was not refused: {answers}\n{done.stderr[-2000:]}"

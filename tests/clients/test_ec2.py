"""A project member manages their own EC2-style access keys with the
openstack CLI, and nobody else's."""

from __future__ import annotations

from test_identity_admin import create_tenant, user_cloud


def member(region, unique: str) -> tuple[dict, str]:
    t = create_tenant(region, unique)
    region.cli_ok("role", "add", "--project", t["project_id"], "--user", t["user_id"], "member")
    return t, user_cloud(region, t)


def test_member_creates_lists_shows_and_deletes_ec2_credentials(region, unique):
    t, cloud = member(region, unique)
    assert region.cli_json("ec2", "credentials", "list", cloud=cloud) == []

    created = region.cli_json("ec2", "credentials", "create", cloud=cloud)
    assert created["project_id"] == t["project_id"] and created["user_id"] == t["user_id"], created
    access, secret = created["access"], created["secret"]
    assert access and secret and access != secret, created

    second = region.cli_json("ec2", "credentials", "create", cloud=cloud)
    listed = region.cli_json("ec2", "credentials", "list", cloud=cloud)
    assert sorted(c["Access"] for c in listed) == sorted([access, second["access"]]), listed
    assert all(c["Project ID"] == t["project_id"] and c["User ID"] == t["user_id"] for c in listed), listed

    shown = region.cli_json("ec2", "credentials", "show", access, cloud=cloud)
    assert (shown["access"], shown["secret"], shown["project_id"]) == (access, secret, t["project_id"]), shown

    region.cli_ok("ec2", "credentials", "delete", access, cloud=cloud)
    listed = region.cli_json("ec2", "credentials", "list", cloud=cloud)
    assert [c["Access"] for c in listed] == [second["access"]], listed
    done = region.cli("ec2", "credentials", "show", access, cloud=cloud)
    assert done.returncode != 0 and "404" in done.stderr, done.stderr


def test_ec2_credentials_of_another_user_stay_hidden(region, unique):
    owner, owner_cloud = member(region, f"{unique}a")
    _, other_cloud = member(region, f"{unique}b")
    created = region.cli_json("ec2", "credentials", "create", cloud=owner_cloud)

    assert region.cli_json("ec2", "credentials", "list", cloud=other_cloud) == []
    done = region.cli("ec2", "credentials", "show", "--user", owner["user_id"], created["access"],
                      cloud=other_cloud)
    assert done.returncode != 0 and ("403" in done.stderr or "404" in done.stderr), done.stderr
    done = region.cli("ec2", "credentials", "delete", "--user", owner["user_id"], created["access"],
                      cloud=other_cloud)
    assert done.returncode != 0 and ("403" in done.stderr or "404" in done.stderr), done.stderr
    # still there for its owner
    shown = region.cli_json("ec2", "credentials", "show", created["access"], cloud=owner_cloud)
    assert shown["secret"] == created["secret"], shown

"""The Compute API with the openstack CLI: the catalog entry, the SCS standard flavors, flavor
management and private access, keypairs, quotas and limits; servers on a host that cannot run
instances (no dataplane here) end in ERROR with a fault that says why, and delete cleanly.
Servers that really boot are in test_compute_servers.py."""

from __future__ import annotations

import json
import time


def make_member(region, unique: str, role: str = "member") -> dict:
    t = {"project": f"cmp-{unique}", "user": f"cmp-user-{unique}", "password": f"pw-{unique}-Secret!"}
    t["project_id"] = region.cli_json("project", "create", "--domain", "default", t["project"])["id"]
    region.cli_ok("user", "create", "--domain", "default", "--password", t["password"], t["user"])
    region.cli_ok("role", "add", "--project", t["project"], "--user", t["user"], role)
    t["cloud"] = region.add_user_cloud(f"cmp-{unique}", username=t["user"], password=t["password"],
                                       domain="Default", project=t["project"])
    return t


def refused(done, text: str = "") -> None:
    assert done.returncode != 0, f"expected a refusal, got success: {done.stdout}"
    assert text in done.stderr, done.stderr


def test_the_catalog_has_compute(region):
    services = region.cli_json("catalog", "list", config=region.clouds_yaml)
    compute = [s for s in services if s["Type"] == "compute"]
    assert compute and compute[0]["Name"] == "nova", services
    assert all(e["url"].endswith("/compute/v2.1") for e in compute[0]["Endpoints"]), compute
    zones = region.cli_json("availability", "zone", "list", "--compute")
    assert ("nova", "available") in {(z["Zone Name"], z["Zone Status"]) for z in zones}, zones


def test_standard_flavors(region, unique):
    t = make_member(region, unique)
    flavors = {f["Name"]: f for f in region.cli_json("flavor", "list", cloud=t["cloud"])}
    for name in ("SCS-1V-4", "SCS-2V-8", "SCS-4V-16", "SCS-8V-32", "SCS-1V-2", "SCS-2V-4", "SCS-4V-8",
                 "SCS-8V-16", "SCS-16V-32", "SCS-1V-8", "SCS-2V-16", "SCS-4V-32", "SCS-1L-1",
                 "SCS-2V-4-20s", "SCS-4V-16-100s"):
        assert name in flavors, sorted(flavors)
    assert flavors["SCS-4V-16-100s"]["VCPUs"] == 4 and flavors["SCS-4V-16-100s"]["RAM"] == 16384
    assert flavors["SCS-4V-16-100s"]["Disk"] == 100
    shown = region.cli_json("flavor", "show", "SCS-2V-4-20s", cloud=t["cloud"])
    props = shown["properties"]
    if isinstance(props, str):  # older clients print key='value' pairs
        props = dict(p.split("=", 1) for p in props.replace("'", "").split(", "))
    assert props["scs:name-v2"] == "SCS-2V-4-20s" and props["scs:disk0-type"] == "ssd", props


def test_flavor_management_and_private_access(region, unique):
    t = make_member(region, unique)
    refused(region.cli("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1", f"nope-{unique}",
                       cloud=t["cloud"]), "403")
    flavor = region.cli_json("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1", "--private",
                             "--property", "himmel:driver=namespace", f"tiny-{unique}")
    assert flavor["os-flavor-access:is_public"] is False, flavor
    names = [f["Name"] for f in region.cli_json("flavor", "list", cloud=t["cloud"])]
    assert f"tiny-{unique}" not in names
    region.cli_ok("flavor", "set", "--project", t["project_id"], flavor["id"])
    names = [f["Name"] for f in region.cli_json("flavor", "list", cloud=t["cloud"])]
    assert f"tiny-{unique}" in names
    region.cli_ok("flavor", "delete", flavor["id"])
    refused(region.cli("flavor", "show", flavor["id"]), "No Flavor found")


def test_keypairs(region, unique, tmp_path):
    t = make_member(region, unique)
    private = tmp_path / "id"
    made = region.cli_json("keypair", "create", "--private-key", str(private), f"gen-{unique}",
                           cloud=t["cloud"])
    assert made["name"] == f"gen-{unique}" and made["fingerprint"], made
    assert "PRIVATE KEY" in private.read_text()
    generated = tmp_path / "id.pub"
    shown = region.cli_json("keypair", "show", f"gen-{unique}", cloud=t["cloud"])
    assert shown["fingerprint"] == made["fingerprint"], shown
    public = region.cli_ok("keypair", "show", "--public-key", f"gen-{unique}", cloud=t["cloud"]).strip()
    generated.write_text(public + "\n")
    imported = region.cli_json("keypair", "create", "--public-key", str(generated), f"imp-{unique}",
                               cloud=t["cloud"])
    assert imported["fingerprint"] == made["fingerprint"], imported
    names = {k["Name"] for k in region.cli_json("keypair", "list", cloud=t["cloud"])}
    assert names == {f"gen-{unique}", f"imp-{unique}"}, names
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-rsa this-is-not-a-key\n")
    refused(region.cli("keypair", "create", "--public-key", str(bad), f"bad-{unique}", cloud=t["cloud"]))
    region.cli_ok("keypair", "delete", f"gen-{unique}", cloud=t["cloud"])
    names = {k["Name"] for k in region.cli_json("keypair", "list", cloud=t["cloud"])}
    assert names == {f"imp-{unique}"}, names


def test_quotas_and_limits(region, unique):
    t = make_member(region, unique)
    region.cli_ok("quota", "set", "--instances", "3", "--cores", "6", t["project_id"])
    quota = region.cli_json("quota", "show", "--compute", t["project_id"])
    rows = {q["Resource"]: q["Limit"] for q in quota} if isinstance(quota, list) else quota
    assert rows.get("instances") == 3 and rows.get("cores") == 6, quota
    limits = region.cli_json("limits", "show", "--absolute", cloud=t["cloud"])
    # Client versions name the rows differently ("maxTotalInstances", "instances", ...).
    values = {row["Name"].replace(" ", "").replace("_", "").lower(): row["Value"] for row in limits}
    assert any("instances" in k and "used" not in k and v == 3 for k, v in values.items()), values
    assert any("instances" in k and "used" in k and v == 0 for k, v in values.items()), values


def test_servers_without_a_hypervisor_fail_with_a_fault(region, unique, tmp_path):
    t = make_member(region, unique)
    cli_json = lambda *a: region.cli_json(*a, cloud=t["cloud"])  # noqa: E731
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\0" * 4096)
    image = cli_json("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file",
                     str(disk), f"img-{unique}")
    net = cli_json("network", "create", f"net-{unique}")
    cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.77.0.0/24", f"sub-{unique}")
    flavor = region.cli_json("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1", f"f-{unique}")

    # An unknown network is refused.
    refused(region.cli("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--nic",
                       "net-id=00000000-0000-4000-8000-000000000000", f"x-{unique}", cloud=t["cloud"]),
            "Network")

    server = cli_json("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network",
                      net["id"], f"srv-{unique}")
    deadline = time.monotonic() + 30
    shown = cli_json("server", "show", server["id"])
    while shown["status"] != "ERROR" and time.monotonic() < deadline:
        time.sleep(0.2)
        shown = cli_json("server", "show", server["id"])
    assert shown["status"] == "ERROR", shown
    fault = shown["fault"] if isinstance(shown["fault"], dict) else json.loads(shown["fault"].replace("'", '"'))
    assert "cannot run instances" in fault["message"], shown
    listed = {s["Name"]: s["Status"] for s in cli_json("server", "list")}
    assert listed == {f"srv-{unique}": "ERROR"}, listed
    ports = cli_json("port", "list", "--device-id", server["id"])
    assert ports == [], "a failed build leaves no ports"
    region.cli_ok("server", "delete", "--wait", server["id"], cloud=t["cloud"])
    assert cli_json("server", "list") == []


def test_server_groups(region, unique, tmp_path):
    t = make_member(region, unique)
    cli_json = lambda *a: region.cli_json(*a, cloud=t["cloud"])  # noqa: E731
    group = cli_json("server", "group", "create", "--policy", "anti-affinity", f"apart-{unique}")
    assert group["name"] == f"apart-{unique}", group
    policy = group.get("policy") or group.get("policies")
    assert "anti-affinity" in str(policy), group
    listed = cli_json("server", "group", "list")
    assert [g["ID"] for g in listed] == [group["id"]], listed
    shown = cli_json("server", "group", "show", group["id"])
    assert shown["id"] == group["id"] and not shown["members"], shown
    refused(region.cli("server", "group", "create", "--policy", "spread", f"bad-{unique}", cloud=t["cloud"]))

    # A server created with the group hint is accepted (this host has no hypervisor, so its
    # build fails and it leaves the group again); an unknown group is refused.
    disk = tmp_path / "disk.raw"
    disk.write_bytes(b"\0" * 4096)
    image = cli_json("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file",
                     str(disk), f"img-{unique}")
    net = cli_json("network", "create", f"net-{unique}")
    cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.78.0.0/24", f"sub-{unique}")
    flavor = region.cli_json("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1", f"g-{unique}")
    refused(region.cli("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network",
                       net["id"], "--hint", "group=00000000-0000-4000-8000-000000000000", f"x-{unique}",
                       cloud=t["cloud"]), "Invalid server group")
    server = cli_json("server", "create", "--flavor", flavor["id"], "--image", image["id"], "--network",
                      net["id"], "--hint", f"group={group['id']}", f"member-{unique}")
    region.cli_ok("server", "delete", "--wait", server["id"], cloud=t["cloud"])

    region.cli_ok("quota", "set", "--server-groups", "1", t["project_id"])
    refused(region.cli("server", "group", "create", "--policy", "affinity", f"more-{unique}", cloud=t["cloud"]),
            "Quota exceeded")
    region.cli_ok("server", "group", "delete", group["id"], cloud=t["cloud"])
    assert cli_json("server", "group", "list") == []

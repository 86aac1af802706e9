"""Project networking with the openstack CLI and openstacksdk: networks,
subnets, ports, routers, floating IPs, security groups, quotas and tags, as a
project member would use them; other projects see none of it; bad input is
refused with Neutron's errors."""

from __future__ import annotations

import pytest


def make_member(region, unique: str, role: str = "member") -> dict:
    """A project and a user with `role` on it, set up by the administrator."""
    t = {"project": f"net-{unique}", "user": f"net-user-{unique}", "password": f"pw-{unique}-Secret!"}
    t["project_id"] = region.cli_json("project", "create", "--domain", "default", t["project"])["id"]
    region.cli_ok("user", "create", "--domain", "default", "--password", t["password"], t["user"])
    region.cli_ok("role", "add", "--project", t["project"], "--user", t["user"], role)
    t["cloud"] = region.add_user_cloud(f"net-{unique}", username=t["user"], password=t["password"],
                                       domain="Default", project=t["project"])
    return t


def refused(done, status: str, text: str = "") -> None:
    assert done.returncode != 0, f"expected a refusal, got success: {done.stdout}"
    assert status in done.stderr, done.stderr
    assert text in done.stderr, done.stderr


def external_network(region, unique: str) -> str:
    name = f"public-{unique}"
    region.cli_ok("network", "create", "--external", name)
    region.cli_ok("subnet", "create", "--network", name, "--subnet-range", "198.51.100.0/28",
                  "--no-dhcp", f"{name}-v4")
    return name


def test_the_catalog_has_the_network_service(region):
    services = region.cli_json("catalog", "list", config=region.clouds_yaml)
    network = [s for s in services if s["Type"] == "network"]
    assert network and network[0]["Name"] == "neutron", services
    assert {e["interface"] for e in network[0]["Endpoints"]} == {"public", "internal", "admin"}, network
    assert all(e["url"].endswith("/networking") for e in network[0]["Endpoints"]), network
    zones = region.cli_json("availability", "zone", "list", "--network")
    assert {(z["Zone Name"], z["Zone Status"]) for z in zones} == {("nova", "available")}, zones
    aliases = {e["Alias"] for e in region.cli_json("extension", "list", "--network")}
    assert {"router", "security-group", "quotas", "standard-attr-tag"} <= aliases, aliases


def test_network_subnet_port_lifecycle(region, unique):
    t = make_member(region, unique)
    cli_json = lambda *a: region.cli_json(*a, cloud=t["cloud"])  # noqa: E731
    cli = lambda *a: region.cli(*a, cloud=t["cloud"])  # noqa: E731

    net = cli_json("network", "create", "--tag", "blue", "--description", "app tier", f"app-{unique}")
    assert net["project_id"] == t["project_id"] and net["mtu"] == 1450 and net["status"] == "ACTIVE", net
    assert net["tags"] == ["blue"], net
    sub = cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.20.0.0/24",
                   "--gateway", "10.20.0.1", "--allocation-pool", "start=10.20.0.100,end=10.20.0.200",
                   "--dns-nameserver", "192.0.2.53", "--host-route", "destination=172.16.0.0/16,gateway=10.20.0.254",
                   f"app-v4-{unique}")
    assert sub["allocation_pools"] == [{"start": "10.20.0.100", "end": "10.20.0.200"}], sub
    assert sub["dns_nameservers"] == ["192.0.2.53"] and sub["gateway_ip"] == "10.20.0.1", sub
    v6 = cli_json("subnet", "create", "--network", net["id"], "--ip-version", "6", "--subnet-range", "fd00:20::/64",
                  "--ipv6-address-mode", "dhcpv6-stateful", "--ipv6-ra-mode", "dhcpv6-stateful", f"app-v6-{unique}")
    assert v6["gateway_ip"] == "fd00:20::1", v6

    port = cli_json("port", "create", "--network", net["id"], "--fixed-ip", f"subnet={sub['id']},ip-address=10.20.0.150",
                    f"web-{unique}")
    assert port["status"] == "DOWN", port
    assert {"subnet_id": sub["id"], "ip_address": "10.20.0.150"} in port["fixed_ips"], port
    other = cli_json("port", "create", "--network", net["id"], "--mac-address", "fa:16:3e:12:34:56", f"db-{unique}")
    assert other["mac_address"] == "fa:16:3e:12:34:56", other
    listed = cli_json("port", "list", "--network", net["id"], "--fixed-ip", "ip-address=10.20.0.150")
    assert [p["ID"] for p in listed] == [port["id"]], listed
    region.cli_ok("port", "set", "--name", f"web2-{unique}", port["id"], cloud=t["cloud"])
    assert cli_json("port", "show", port["id"])["name"] == f"web2-{unique}"

    region.cli_ok("network", "set", "--name", f"app2-{unique}", "--tag", "green", net["id"], cloud=t["cloud"])
    shown = cli_json("network", "show", net["id"])
    assert shown["name"] == f"app2-{unique}" and sorted(shown["tags"]) == ["blue", "green"], shown
    assert sorted(shown["subnets"]) == sorted([sub["id"], v6["id"]]), shown
    tagged = cli_json("network", "list", "--tags", "green")
    assert [n["ID"] for n in tagged] == [net["id"]], tagged
    assert cli_json("network", "list", "--not-tags", "green") == []

    # Bad input: Neutron's errors, never a server error.
    refused(cli("subnet", "create", "--network", net["id"], "--subnet-range", "10.20.0.0/16", "overlap"),
            "400", "overlaps")
    refused(cli("subnet", "create", "--network", net["id"], "--subnet-range", "10.30.0.0/24",
                "--gateway", "10.99.0.1", "gw-outside"), "400")
    refused(cli("port", "create", "--network", net["id"], "--fixed-ip", "ip-address=10.20.0.150", "dup"), "409")
    refused(cli("port", "create", "--network", net["id"], "--mac-address", "fa:16:3e:12:34:56", "dup-mac"), "409")
    refused(cli("network", "delete", net["id"]), "409")

    # Another project sees none of it.
    stranger = make_member(region, unique + "x")
    refused(region.cli("network", "show", net["id"], cloud=stranger["cloud"]), "No Network found")
    assert all(n["ID"] != net["id"] for n in region.cli_json("network", "list", cloud=stranger["cloud"]))
    refused(region.cli("port", "delete", port["id"], cloud=stranger["cloud"]), "")

    region.cli_ok("port", "delete", port["id"], other["id"], cloud=t["cloud"])
    region.cli_ok("subnet", "delete", v6["id"], cloud=t["cloud"])
    region.cli_ok("network", "delete", net["id"], cloud=t["cloud"])
    refused(cli("subnet", "show", sub["id"]), "No Subnet found")


def test_router_and_floating_ip(region, unique):
    public = external_network(region, unique)
    t = make_member(region, unique)
    cli_json = lambda *a: region.cli_json(*a, cloud=t["cloud"])  # noqa: E731
    cli_ok = lambda *a: region.cli_ok(*a, cloud=t["cloud"])  # noqa: E731

    net = cli_json("network", "create", f"inner-{unique}")
    sub = cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.40.0.0/24", f"inner-v4-{unique}")
    router = cli_json("router", "create", f"r-{unique}")
    cli_ok("router", "set", "--external-gateway", public, router["id"])
    cli_ok("router", "add", "subnet", router["id"], sub["id"])
    shown = cli_json("router", "show", router["id"])
    gw = shown["external_gateway_info"]
    assert gw["enable_snat"] is True and gw["external_fixed_ips"][0]["ip_address"].startswith("198.51.100."), shown
    ifaces = cli_json("port", "list", "--router", router["id"])
    assert [p["Fixed IP Addresses"][0]["ip_address"] for p in ifaces] == ["10.40.0.1"], ifaces
    cli_ok("router", "set", "--route", "destination=172.20.0.0/16,gateway=10.40.0.9", router["id"])
    assert cli_json("router", "show", router["id"])["routes"] == [
        {"destination": "172.20.0.0/16", "nexthop": "10.40.0.9"}]
    # SNAT off is an administrator's call.
    refused(region.cli("router", "set", "--external-gateway", public, "--disable-snat", router["id"],
                       cloud=t["cloud"]), "403")
    region.cli_ok("router", "set", "--external-gateway", public, "--disable-snat", router["id"])
    assert cli_json("router", "show", router["id"])["external_gateway_info"]["enable_snat"] is False

    port = cli_json("port", "create", "--network", net["id"], f"vm-{unique}")
    fip = cli_json("floating", "ip", "create", "--port", port["id"], public)
    assert fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"] and fip["router_id"] == router["id"], fip
    assert [f["ID"] for f in cli_json("floating", "ip", "list", "--port", port["id"])] == [fip["id"]]
    cli_ok("floating", "ip", "unset", "--port", fip["id"])
    assert cli_json("floating", "ip", "show", fip["id"])["port_id"] is None
    cli_ok("floating", "ip", "set", "--port", port["id"], fip["id"])
    assert cli_json("floating", "ip", "show", fip["id"])["port_id"] == port["id"]
    refused(region.cli("floating", "ip", "create", net["id"], cloud=t["cloud"]), "400", "not a valid external network")

    cli_ok("floating", "ip", "delete", fip["id"])
    cli_ok("router", "unset", "--route", "destination=172.20.0.0/16,gateway=10.40.0.9", router["id"])
    cli_ok("router", "remove", "subnet", router["id"], sub["id"])
    cli_ok("router", "unset", "--external-gateway", router["id"])
    cli_ok("router", "delete", router["id"])
    cli_ok("port", "delete", port["id"])
    cli_ok("network", "delete", net["id"])


def test_security_groups_and_rules(region, unique):
    t = make_member(region, unique)
    cli_json = lambda *a: region.cli_json(*a, cloud=t["cloud"])  # noqa: E731
    cli = lambda *a: region.cli(*a, cloud=t["cloud"])  # noqa: E731

    groups = cli_json("security", "group", "list")
    assert [g["Name"] for g in groups] == ["default"], groups
    default_rules = cli_json("security", "group", "rule", "list", groups[0]["ID"])
    assert sorted((r["Direction"], r["Ethertype"]) for r in default_rules) == [
        ("egress", "IPv4"), ("egress", "IPv6"), ("ingress", "IPv4"), ("ingress", "IPv6")], default_rules

    sg = cli_json("security", "group", "create", "--description", "web", f"web-{unique}")
    rule = cli_json("security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "8080",
                    "--remote-ip", "192.0.2.0/24", sg["id"])
    assert (rule["port_range_min"], rule["port_range_max"], rule["remote_ip_prefix"]) == (8080, 8080, "192.0.2.0/24")
    icmp = cli_json("security", "group", "rule", "create", "--protocol", "icmp", "--icmp-type", "8", sg["id"])
    assert icmp["protocol"] == "icmp" and icmp["port_range_min"] == 8, icmp
    refused(cli("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "8080",
                "--remote-ip", "192.0.2.0/24", sg["id"]), "409")
    refused(cli("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "0:10", sg["id"]), "400")
    refused(cli("security", "group", "rule", "create", "--protocol", "gre", "--dst-port", "22", sg["id"]), "400")
    refused(cli("security", "group", "rule", "create", "--ethertype", "IPv4", "--remote-ip", "::/0", sg["id"]), "400")
    region.cli_ok("security", "group", "set", "--name", f"web2-{unique}", sg["id"], cloud=t["cloud"])

    net = cli_json("network", "create", f"sgnet-{unique}")
    cli_json("subnet", "create", "--network", net["id"], "--subnet-range", "10.50.0.0/24", f"sgsub-{unique}")
    port = cli_json("port", "create", "--network", net["id"], "--security-group", sg["id"], f"p-{unique}")
    assert port["security_group_ids"] == [sg["id"]], port
    refused(cli("security", "group", "delete", sg["id"]), "409")
    region.cli_ok("port", "delete", port["id"], cloud=t["cloud"])
    region.cli_ok("security", "group", "rule", "delete", rule["id"], cloud=t["cloud"])
    region.cli_ok("security", "group", "delete", sg["id"], cloud=t["cloud"])
    region.cli_ok("network", "delete", net["id"], cloud=t["cloud"])


def network_quota(region, project: str) -> dict:
    rows = region.cli_json("quota", "show", "--network", project)
    return {row["Resource"]: row["Limit"] for row in rows}


def test_quota_show_set_and_enforced(region, unique):
    t = make_member(region, unique)
    shown = network_quota(region, t["project"])
    assert shown["networks"] == 100 and shown["ports"] == 500 and shown["routers"] == 10, shown
    region.cli_ok("quota", "set", "--networks", "1", "--ports", "3", t["project"])
    shown = network_quota(region, t["project"])
    assert shown["networks"] == 1 and shown["ports"] == 3, shown
    refused(region.cli("quota", "set", "--networks", "5", t["project"], cloud=t["cloud"]), "403")
    region.cli_ok("network", "create", f"only-{unique}", cloud=t["cloud"])
    refused(region.cli("network", "create", f"second-{unique}", cloud=t["cloud"]), "409", "Quota exceeded")


def test_openstacksdk(region, unique):
    t = make_member(region, unique)
    conn = region.sdk(cloud=t["cloud"])
    net = conn.network.create_network(name=f"sdk-{unique}")
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.60.0.0/24", name=f"sdk-v4-{unique}")
    ports = [conn.network.create_port(network_id=net.id, name=f"sdk-p{i}-{unique}") for i in range(5)]
    addresses = sorted(p.fixed_ips[0]["ip_address"] for p in ports)
    assert len(set(addresses)) == 5 and all(a.startswith("10.60.0.") for a in addresses), addresses
    # Paging through a small limit yields every port exactly once.
    paged = [p.id for p in conn.network.ports(network_id=net.id, device_owner="", limit=2)]
    assert sorted(paged) == sorted(p.id for p in ports), paged
    conn.network.set_tags(net, ["sdk", "tagged"])
    assert sorted(conn.network.get_network(net.id).tags) == ["sdk", "tagged"]
    # Revision numbers guard concurrent updates.
    read = conn.network.get_network(net.id).revision_number
    conn.network.update_network(net.id, name=f"sdk2-{unique}", if_revision=read)
    import openstack.exceptions
    with pytest.raises(openstack.exceptions.PreconditionFailedException):
        conn.network.update_network(net.id, name=f"sdk3-{unique}", if_revision=read)
    assert conn.network.get_network(net.id).name == f"sdk2-{unique}"
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.60.0.0/25")
    for p in ports:
        conn.network.delete_port(p)
    conn.network.delete_subnet(sub)
    conn.network.delete_network(net)
    assert conn.network.find_network(net.id) is None

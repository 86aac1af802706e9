"""Secrets with the Key Manager (Barbican v1) API through the real clients:
`openstack secret …` / `openstack acl …` (python-barbicanclient) and
openstacksdk's key_manager. A project member stores, reads and deletes; a
reader cannot store; another project cannot read unless an ACL says so."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tenant(region):
    """Project A with a member, a second member and a reader; project B with
    a member. Returns their cloud names and ids."""
    tag = __import__("uuid").uuid4().hex[:8]
    t = {}
    for project in ("a", "b"):
        created = region.cli_json("project", "create", "--domain", "default", f"km-{project}-{tag}",
                                  config=region.clouds_yaml)
        t[f"project_{project}"] = created["id"]
    for who, project, role in (("member", "a", "member"), ("member2", "a", "member"),
                               ("reader", "a", "reader"), ("other", "b", "member")):
        name, password = f"km-{who}-{tag}", f"pw-{who}-{tag}-Secret!"
        user = region.cli_json("user", "create", "--domain", "default", "--password", password, name,
                               config=region.clouds_yaml)
        region.cli_ok("role", "add", "--project", t[f"project_{project}"], "--user", user["id"], role,
                      config=region.clouds_yaml)
        t[f"{who}_id"] = user["id"]
        t[who] = region.add_user_cloud(f"km-{who}-{tag}", username=name, password=password, domain="Default",
                                       project=f"km-{project}-{tag}")
    return t


TITLES = {"400": "Bad Request", "403": "Forbidden", "404": "Not Found", "413": "Payload Too Large"}


def refused(done, status: str = "403") -> str:
    """barbicanclient prints Barbican's error body as `<title>: <description>`."""
    assert done.returncode != 0, f"expected a refusal, got success: {done.stdout}"
    assert f"{TITLES[status]}: " in done.stderr, done.stderr
    return done.stderr


def test_the_catalog_has_the_key_manager(region):
    services = region.cli_json("catalog", "list", config=region.clouds_yaml)
    km = [s for s in services if s["Type"] == "key-manager"]
    assert km and km[0]["Name"] == "barbican", services
    assert any(e["url"].endswith("/key-manager") for e in km[0]["Endpoints"]), km


def test_member_stores_lists_gets_and_deletes(region, tenant, unique):
    marker = f"client-marker-{unique}"
    stored = region.cli_json("secret", "store", "--name", f"s-{unique}", "--payload", marker,
                             "--secret-type", "passphrase", cloud=tenant["member"])
    href = stored["Secret href"]
    assert "/key-manager/v1/secrets/" in href, stored

    listed = region.cli_json("secret", "list", "--name", f"s-{unique}", cloud=tenant["member"])
    assert [s["Secret href"] for s in listed] == [href], listed
    assert listed[0]["Status"] == "ACTIVE" and listed[0]["Secret type"] == "passphrase", listed

    shown = region.cli_json("secret", "get", href, cloud=tenant["member"])
    assert shown["Name"] == f"s-{unique}" and shown["Content types"], shown
    payload = region.cli_json("secret", "get", "--payload", href, cloud=tenant["member"])
    assert payload["Payload"] == marker, payload
    # The other member of the project shares it (it is not private).
    payload = region.cli_json("secret", "get", "--payload", href, cloud=tenant["member2"])
    assert payload["Payload"] == marker, payload

    region.cli_ok("secret", "delete", href, cloud=tenant["member"])
    refused(region.cli("secret", "get", href, cloud=tenant["member"]), "404")
    assert region.cli_json("secret", "list", "--name", f"s-{unique}", cloud=tenant["member"]) == []


def test_reader_lists_but_cannot_store_or_read_payloads(region, tenant, unique):
    href = region.cli_json("secret", "store", "--name", f"r-{unique}", "--payload", "x",
                           cloud=tenant["member"])["Secret href"]
    refused(region.cli("secret", "store", "--name", f"nope-{unique}", "--payload", "x", cloud=tenant["reader"]))
    listed = region.cli_json("secret", "list", "--name", f"r-{unique}", cloud=tenant["reader"])
    assert [s["Secret href"] for s in listed] == [href], listed
    refused(region.cli("secret", "get", "--payload", href, cloud=tenant["reader"]))
    refused(region.cli("secret", "delete", href, cloud=tenant["reader"]))


def test_another_project_cannot_read_until_an_acl_lets_its_user(region, tenant, unique):
    marker = f"acl-marker-{unique}"
    href = region.cli_json("secret", "store", "--name", f"a-{unique}", "--payload", marker,
                           cloud=tenant["member"])["Secret href"]
    refused(region.cli("secret", "get", href, cloud=tenant["other"]))
    refused(region.cli("secret", "get", "--payload", href, cloud=tenant["other"]))
    assert region.cli_json("secret", "list", "--name", f"a-{unique}", cloud=tenant["other"]) == []

    region.cli_ok("acl", "user", "add", "--user", tenant["other_id"], href, cloud=tenant["member"])
    acls = region.cli_json("acl", "get", href, cloud=tenant["member"])
    read = [a for a in acls if a["Operation Type"] == "read"]
    assert read and tenant["other_id"] in read[0]["Users"], acls
    payload = region.cli_json("secret", "get", "--payload", href, cloud=tenant["other"])
    assert payload["Payload"] == marker, payload

    # Private: the project's other member is out, the ACL user still in.
    region.cli_ok("acl", "submit", "--user", tenant["other_id"], "--no-project-access", href,
                  cloud=tenant["member"])
    refused(region.cli("secret", "get", "--payload", href, cloud=tenant["member2"]))
    assert region.cli_json("secret", "get", "--payload", href, cloud=tenant["other"])["Payload"] == marker

    region.cli_ok("acl", "delete", href, cloud=tenant["member"])
    refused(region.cli("secret", "get", "--payload", href, cloud=tenant["other"]))
    assert region.cli_json("secret", "get", "--payload", href, cloud=tenant["member2"])["Payload"] == marker


def test_bad_input_gets_barbicans_error(region, tenant, unique):
    done = region.cli("secret", "store", "--name", f"bad-{unique}", "--payload", "x",
                      "--payload-content-type", "image/png", cloud=tenant["member"])
    err = refused(done, "400")
    assert "payload_content_type is not one of" in err, err
    done = region.cli("secret", "store", "--payload", "not base64!!", "--payload-content-type",
                      "application/octet-stream", "--payload-content-encoding", "base64", cloud=tenant["member"])
    assert "Invalid payload for payload_content_encoding" in refused(done, "400")
    done = region.cli("secret", "store", "--payload", "y" * 10_001, cloud=tenant["member"])
    assert "too large" in refused(done, "413")


def test_openstacksdk_key_manager(region, tenant, unique):
    conn = region.sdk(tenant["member"])
    secret = conn.key_manager.create_secret(name=f"sdk-{unique}", payload=f"sdk-marker-{unique}",
                                            payload_content_type="text/plain", secret_type="opaque")
    # openstacksdk's Secret.id is the secret_ref; secret_id is the UUID in it.
    assert secret.secret_ref.endswith(f"/key-manager/v1/secrets/{secret.secret_id}"), secret
    names = [s.name for s in conn.key_manager.secrets(name=f"sdk-{unique}")]
    assert names == [f"sdk-{unique}"], names
    got = conn.key_manager.get_secret(secret.secret_id)
    assert got.name == f"sdk-{unique}" and got.payload == f"sdk-marker-{unique}", got
    conn.key_manager.delete_secret(secret.secret_id, ignore_missing=False)
    assert list(conn.key_manager.secrets(name=f"sdk-{unique}")) == []
    # (the sdk's Secret.fetch does not raise on errors, so ask plainly)
    gone = conn.key_manager.get(f"/secrets/{secret.secret_id}", raise_exc=False)
    assert gone.status_code == 404, gone.text


def test_order_generates_an_aes_256_key_its_owner_can_read(region, tenant, unique):
    order = region.cli_json("secret", "order", "create", "--name", f"o-{unique}", "--algorithm", "aes",
                            "--bit-length", "256", "--mode", "cbc", "key", cloud=tenant["member"])
    order_href = order["Order href"]
    shown = region.cli_json("secret", "order", "get", order_href, cloud=tenant["member"])
    assert shown["Status"] == "ACTIVE" and shown["Secret href"], shown
    secret = region.cli_json("secret", "get", shown["Secret href"], cloud=tenant["member"])
    assert secret["Algorithm"] == "aes" and secret["Bit length"] == 256, secret
    assert secret["Secret type"] == "symmetric", secret

    conn = region.sdk(tenant["member"])
    key = conn.key_manager.get_secret(shown["Secret href"].rsplit("/", 1)[-1])
    assert isinstance(key.payload, bytes) and len(key.payload) == 32, key

    refused(region.cli("secret", "order", "create", "--algorithm", "aes", "--bit-length", "100", "key",
                       cloud=tenant["member"]), "400")
    refused(region.cli("secret", "order", "create", "--algorithm", "aes", "--bit-length", "256", "key",
                       cloud=tenant["reader"]))
    orders = region.cli_json("secret", "order", "list", cloud=tenant["member"])
    assert order_href in [o["Order href"] for o in orders], orders
    region.cli_ok("secret", "order", "delete", order_href, cloud=tenant["member"])


def test_container_groups_secrets(region, tenant, unique):
    first = region.cli_json("secret", "store", "--name", f"c1-{unique}", "--payload", "one",
                            cloud=tenant["member"])["Secret href"]
    second = region.cli_json("secret", "store", "--name", f"c2-{unique}", "--payload", "two",
                             cloud=tenant["member"])["Secret href"]
    container = region.cli_json("secret", "container", "create", "--name", f"box-{unique}", "--type", "generic",
                                "--secret", f"first={first}", "--secret", f"second={second}",
                                cloud=tenant["member"])
    href = container["Container href"]
    shown = region.cli_json("secret", "container", "get", href, cloud=tenant["member"])
    assert shown["Name"] == f"box-{unique}" and shown["Type"] == "generic", shown
    assert first in str(shown["Secrets"]) and second in str(shown["Secrets"]), shown
    listed = region.cli_json("secret", "container", "list", cloud=tenant["member"])
    assert href in [c["Container href"] for c in listed], listed
    refused(region.cli("secret", "container", "get", href, cloud=tenant["other"]))
    region.cli_ok("secret", "container", "delete", href, cloud=tenant["member"])
    refused(region.cli("secret", "container", "get", href, cloud=tenant["member"]), "404")


def test_stored_payloads_are_nowhere_in_the_clear(region, tenant, unique):
    """After storing secrets with a known marker, neither the data dir (the
    SQLite file and its WAL, keys, everything) nor a dump of the PostgreSQL
    database holds the marker, plain or base64-encoded."""
    import base64
    import shutil
    import subprocess
    from pathlib import Path

    marker = f"PLAINTEXT-MARKER-{unique}"
    region.cli_ok("secret", "store", "--payload", marker, cloud=tenant["member"])
    region.sdk(tenant["member"]).key_manager.create_secret(payload=f"{marker}-text", payload_content_type="text/plain")
    needles = [marker.encode(), base64.b64encode(marker.encode()), base64.b64encode(f"{marker}-text".encode())]

    if region.external:
        pytest.skip("an external cloud's storage cannot be inspected")
    for path in Path(region.data_dir).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), f"{path} holds the marker"
    if region.database:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))
        pg_dump = shutil.which("pg_dump") or (str(found[-1]) if found else None)
        assert pg_dump, "pg_dump not found (the PostgreSQL client tools come with the test command's server)"
        dump = subprocess.run([pg_dump, region.database], check=True, capture_output=True, timeout=60).stdout
        assert b"kms_secrets" in dump, "the dump does not cover the secrets table"
        assert not any(n in dump for n in needles), "the PostgreSQL dump holds the marker"

"""Fixtures that run a real `himmel serve` for the client tests.

Every test talks to the server the way a user would: through the `openstack`
command line client (as a subprocess) or through openstacksdk. The same tests
run once against the embedded SQLite store and once against PostgreSQL.

Environment:
  HIMMEL_BIN            the himmel binary (default: target/release/himmel)
  HIMMEL_TEST_POSTGRES  base URL of a PostgreSQL server (postgres://user@host:port);
                        without it the PostgreSQL variant is skipped with that reason
  HIMMEL_TEST_CLOUDS_YAML  run the suite against an already running cloud (cloud
                        `himmel` in that file, e.g. a reference Keystone) instead of
                        starting himmel; tests that start their own server are skipped
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# Regions run as root would build real bridges, namespaces and dnsmasq for
# every network a test creates, and leave them behind when stopped; only the
# dataplane tests (test_network_dataplane.py) turn it on, for their region.
os.environ.setdefault("HIMMEL_NO_DATAPLANE", "1")
CLOUD = "himmel"
READY_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0


def himmel_binary() -> Path:
    path = Path(os.environ.get("HIMMEL_BIN", REPO / "target" / "release" / "himmel"))
    if not path.is_file():
        pytest.fail(f"himmel binary not found at {path}: build it (cargo build --release -p himmel) or set HIMMEL_BIN")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # The server must not outlive a test run that is killed: ask the kernel to
    # send it SIGTERM when the pytest process goes away.
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Region:
    """One running `himmel serve` process with its own data directory."""

    def __init__(self, data_dir: Path, database: str | None):
        self.data_dir = data_dir
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.clients_yaml = data_dir.parent / f"{data_dir.name}-clients.yaml"
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.external = os.environ.get("HIMMEL_TEST_CLOUDS_YAML")

    @property
    def clouds_yaml(self) -> Path:
        return Path(self.external) if self.external else self.data_dir / "clouds.yaml"

    def spawn(self) -> None:
        # every listener on a port of its own, so that regions can run side by side
        args = [str(himmel_binary()), "serve", "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}", "--s3-listen", f"127.0.0.1:{free_port()}"]
        if self.database:
            args += ["--database", self.database]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)
        log.close()

    def wait_healthy(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                    if resp.status == 200 and self.clouds_yaml.is_file():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"himmel did not become healthy within {timeout}s\n{self.log_tail()}")

    def assert_running(self) -> None:
        if self.process is None:
            return  # an external cloud (HIMMEL_TEST_CLOUDS_YAML)
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"himmel serve exited with status {code}\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if self.external:
            return "(external cloud: no server log)"
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no server log)"
        return "--- himmel serve log (tail) ---\n" + "\n".join(text[-lines:])

    # --- client configuration -------------------------------------------------

    def admin_cloud(self) -> dict:
        clouds = yaml.safe_load(self.clouds_yaml.read_text())["clouds"]
        assert CLOUD in clouds, f"clouds.yaml has no cloud {CLOUD!r}: {sorted(clouds)}"
        return clouds[CLOUD]

    def add_user_cloud(self, name: str, *, username: str, password: str, domain: str, project: str) -> str:
        """Adds a cloud for a (non-admin) user, scoped to `project`, to the
        clients' configuration file (the server's clouds.yaml is left as it is)."""
        admin = self.admin_cloud()
        config = {"clouds": {CLOUD: admin}}
        if self.clients_yaml.is_file():
            config = yaml.safe_load(self.clients_yaml.read_text())
        entry = {
            "auth": {
                "auth_url": admin["auth"]["auth_url"],
                "username": username,
                "password": password,
                "user_domain_name": domain,
                "project_name": project,
                "project_domain_name": domain,
            },
            "identity_api_version": 3,
        }
        if "region_name" in admin:
            entry["region_name"] = admin["region_name"]
        config["clouds"][name] = entry
        self.clients_yaml.write_text(yaml.safe_dump(config))
        return name

    # --- the openstack command line client -----------------------------------

    def cli(self, *args: str, cloud: str = CLOUD, config: Path | None = None) -> subprocess.CompletedProcess:
        """Runs `openstack --os-cloud CLOUD ARGS...` and returns the finished process."""
        if config is None:
            config = self.clients_yaml if self.clients_yaml.is_file() else self.clouds_yaml
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(config)
        beside_python = Path(sys.executable).with_name("openstack")
        openstack = str(beside_python) if beside_python.is_file() else shutil.which("openstack") or "openstack"
        return subprocess.run([openstack, "--os-cloud", cloud, *args], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S)

    def cli_ok(self, *args: str, **kw) -> str:
        done = self.cli(*args, **kw)
        if done.returncode != 0:
            self.assert_running()
            raise AssertionError(f"`openstack {' '.join(args)}` failed ({done.returncode}):\n"
                                 f"{done.stderr.strip()}\n{self.log_tail(20)}")
        return done.stdout

    def cli_json(self, *args: str, **kw):
        return json.loads(self.cli_ok(*args, "-f", "json", **kw))

    # --- openstacksdk ----------------------------------------------------------

    def sdk(self, cloud: str = CLOUD):
        import openstack.config
        import openstack.connection

        config = self.clients_yaml if self.clients_yaml.is_file() else self.clouds_yaml
        loader = openstack.config.OpenStackConfig(config_files=[str(config)], vendor_files=[])
        return openstack.connection.Connection(config=loader.get_one(cloud=cloud))


class Postgres:
    """Creates and drops databases on the server named by HIMMEL_TEST_POSTGRES."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.psql = shutil.which("psql") or _debian_pg_tool("psql")

    def create(self) -> str:
        name = f"himmel_clients_{uuid.uuid4().hex[:12]}"
        self._sql(f"CREATE DATABASE {name}")
        return name

    def drop(self, name: str) -> None:
        self._sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def _sql(self, statement: str) -> None:
        subprocess.run([self.psql, f"{self.base_url}/postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", statement],
                       check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)


def _debian_pg_tool(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        pytest.fail(f"{name} not found (needed to create PostgreSQL test databases)")
    return str(found[-1])


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request):
    """Names the state store ('sqlite' or 'postgres') and yields a factory that
    gives each caller a fresh database URL (None: the embedded SQLite default)."""
    if request.param == "sqlite":
        yield request.param, lambda: None
        return
    base = os.environ.get("HIMMEL_TEST_POSTGRES")
    if not base:
        pytest.skip("HIMMEL_TEST_POSTGRES is not set (scripts/test starts a local PostgreSQL and sets it)")
    pg = Postgres(base)
    created: list[str] = []

    def fresh() -> str:
        name = pg.create()
        created.append(name)
        return pg.url(name)

    yield request.param, fresh
    for name in created:
        try:
            pg.drop(name)
        except subprocess.SubprocessError as e:
            # .work/postgres is throw-away: a database left behind harms nothing
            print(f"could not drop test database {name}: {e}", file=sys.stderr)


@pytest.fixture
def new_region(backend, tmp_path):
    """Factory for regions that the test starts itself (e.g. to time the start)."""
    _, fresh_database = backend
    if os.environ.get("HIMMEL_TEST_CLOUDS_YAML"):
        pytest.skip("runs against an external cloud (HIMMEL_TEST_CLOUDS_YAML): cannot start a server of its own")
    regions: list[Region] = []

    def make() -> Region:
        region = Region(tmp_path / f"region{len(regions)}", fresh_database())
        regions.append(region)
        return region

    yield make
    for region in regions:
        region.stop()


@pytest.fixture(scope="session")
def region(backend, tmp_path_factory):
    """A running region shared by the tests of one backend; tests use unique names."""
    name, fresh_database = backend
    if os.environ.get("HIMMEL_TEST_CLOUDS_YAML"):
        if name != "sqlite":
            pytest.skip("runs against an external cloud (HIMMEL_TEST_CLOUDS_YAML): one backend only")
        yield Region(tmp_path_factory.mktemp("external") / "data", None)
        return
    region = Region(tmp_path_factory.mktemp(f"region-{name}") / "data", fresh_database())
    region.spawn()
    try:
        region.wait_healthy()
        yield region
    finally:
        region.stop()


@pytest.fixture
def unique():
    """A short unique suffix for resource names."""
    return uuid.uuid4().hex[:8]

"""Sets up a reference Keystone for the benchmark in one directory.

Fernet tokens, SQLite, logs in the directory; then `keystone-manage db_sync`,
`fernet_setup`, `credential_setup` and `bootstrap` (admin user, admin project,
roles, a public endpoint on loopback). The admin password is read from
--password-file and handed to keystone-manage through its environment.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

CONFIG = """\
[DEFAULT]
log_dir = {dir}
use_stderr = false

[database]
connection = sqlite:///{dir}/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = {dir}/fernet-keys

[fernet_receipts]
key_repository = {dir}/fernet-receipts

[credential]
key_repository = {dir}/credential-keys

[cache]
enabled = {cache}
backend = dogpile.cache.memory
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--cache", choices=["0", "1"], default="1")
    parser.add_argument("--password-file", required=True)
    args = parser.parse_args()

    password = Path(args.password_file).read_text().strip()
    base = args.dir.resolve()
    base.mkdir(parents=True, exist_ok=True)
    conf = base / "keystone.conf"
    conf.write_text(CONFIG.format(dir=base, cache="true" if args.cache == "1" else "false"))

    manage = str(Path(sys.executable).with_name("keystone-manage"))
    url = f"http://127.0.0.1:{args.port}/v3"
    env = dict(os.environ, OS_BOOTSTRAP_PASSWORD=password)
    steps = [
        ["db_sync"],
        ["fernet_setup", "--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())],
        ["credential_setup", "--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())],
        ["bootstrap", "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
         "--bootstrap-role-name", "admin", "--bootstrap-region-id", "RegionOne",
         "--bootstrap-admin-url", url, "--bootstrap-public-url", url, "--bootstrap-internal-url", url],
    ]
    for step in steps:
        print("keystone-manage", step[0], flush=True)
        subprocess.run([manage, "--config-file", str(conf), *step], env=env, check=True,
                       stdin=subprocess.DEVNULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())

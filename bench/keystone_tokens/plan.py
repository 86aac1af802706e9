"""Prints the load generator's plan (JSON) for himmel vs. Keystone.

himmel's admin credentials come from its generated clouds.yaml (HIMMEL_CLOUDS),
Keystone's from KS_URL and KS_PASSWORD (the bootstrap admin).
"""

import argparse
import json
import os

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--operations", default="issue,validate")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    args = parser.parse_args()

    with open(os.environ["HIMMEL_CLOUDS"]) as f:
        auth = yaml.safe_load(f)["clouds"]["himmel"]["auth"]
    himmel = {
        "system": "himmel",
        "auth_url": auth["auth_url"],
        "username": auth["username"],
        "password": auth["password"],
        "user_domain": auth.get("user_domain_name", "Default"),
        "project": auth["project_name"],
        "project_domain": auth.get("project_domain_name", "Default"),
    }
    keystone = {
        "system": "keystone",
        "auth_url": os.environ["KS_URL"],
        "username": "admin",
        "password": os.environ["KS_PASSWORD"],
        "user_domain": "Default",
        "project": "admin",
        "project_domain": "Default",
    }
    plan = {
        "targets": [himmel, keystone],
        "operations": [op for op in args.operations.split(",") if op],
        "concurrency": [int(c) for c in args.concurrency.split(",") if c],
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "max_requests_per_phase": 2_000_000,
        "request_timeout_s": 60,
    }
    print(json.dumps(plan))


if __name__ == "__main__":
    main()

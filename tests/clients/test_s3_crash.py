"""`kill -9` during concurrent uploads: after a restart every acknowledged
object reads back byte-identical, nothing half-written is visible, and the
files of unfinished uploads are gone. Half the uploaders send small objects
(stored inline, in the metadata row) and half large ones (stored in files),
so the kill lands in both write paths."""

from __future__ import annotations

import hashlib
import os
import threading
import time

from test_s3 import client, s3_endpoint, s3_tenant

# Objects up to this size are stored inline (crates/himmel-object/src/inline.rs).
INLINE_MAX = 64 * 1024


def test_kill_during_uploads_keeps_acknowledged_objects(new_region, unique):
    region = new_region()
    region.spawn()
    region.wait_healthy()
    t = s3_tenant(region, unique)
    bucket = f"crash-{unique}"
    client(t).create_bucket(Bucket=bucket)

    sent: dict[str, str] = {}  # key -> md5 of the complete body
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def uploader(n: int) -> None:
        s3 = client(t)
        i = 0
        while not stop.is_set():
            key = f"w{n}/obj{i}"
            size = 1 + (i * 7919) % INLINE_MAX if n % 2 else 256 * 1024 + i * 4096
            body = os.urandom(size)
            with lock:
                sent[key] = hashlib.md5(body).hexdigest()
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=body)
            except Exception:  # the server went away mid-request
                return
            with lock:
                acked.add(key)
            i += 1

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    region.process.kill()  # SIGKILL: no shutdown of any kind
    region.process.wait(timeout=10)
    stop.set()
    for th in threads:
        th.join(timeout=60)
    assert len(acked) >= 40, f"only {len(acked)} uploads finished before the kill"

    region.spawn()
    region.wait_healthy()
    t["endpoint"] = s3_endpoint(region)
    s3 = client(t)
    visible = {o["Key"]: o for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
               for o in p.get("Contents", [])}
    missing = acked - visible.keys()
    assert not missing, f"{len(missing)} acknowledged objects lost: {sorted(missing)[:5]}"
    for key in visible:
        # whatever is visible is whole: acknowledged, or committed just
        # before the kill cut the answer off
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.md5(body).hexdigest() == sent[key], key
    objects = region.data_dir / "objects"
    assert os.listdir(objects / "tmp") == []
    files = [f for shard in objects.iterdir() if shard.name != "tmp" for f in shard.iterdir()]
    in_files = [k for k, o in visible.items() if o["Size"] > INLINE_MAX]
    assert len(files) == len(in_files), "data files of unfinished uploads were not removed"
    assert len(in_files) < len(visible), "no small object was stored before the kill"

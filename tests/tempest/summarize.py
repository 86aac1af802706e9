"""Summarizes a Tempest run from its subunit stream.

Usage: python summarize.py RESULTS.subunit OUT_DIR [TEST_LIST]

Writes OUT_DIR/results.csv (test id, status), OUT_DIR/failures.txt (each
failed test with its traceback) and OUT_DIR/skips.txt (each skip reason with
its count), OUT_DIR/causes.txt (failures grouped by the service call that
failed and the error it got), and prints the totals as the last line. A class whose setup
failed shows up once, as a failed `setUpClass (module.Class)` entry.
"""

import collections
import csv
import os
import re
import sys

import subunit
import testtools


def read_tests(path):
    tests = {}

    def on_test(test):
        tests[test["id"]] = test

    result = testtools.StreamToDict(on_test)
    with open(path, "rb") as stream:
        case = subunit.ByteStreamToStreamResult(stream, non_subunit_name="stdout")
        result.startTestRun()
        try:
            case.run(result)
        finally:
            result.stopTestRun()
    return tests


def detail_text(test, name):
    content = test["details"].get(name)
    if content is None:
        return ""
    return "".join(bytes(chunk).decode("utf-8", "replace") for chunk in content.iter_bytes())


FRAME = re.compile(r'File "[^"]*/site-packages/(tempest/[^"]+)", line \d+, in (\w+)')
IDS = re.compile(r"\b[0-9a-f]{32}\b|\b[0-9a-f-]{36}\b|tempest-[\w-]+|127\.0\.0\.1:\d+")


def cause_of(traceback):
    """The failed client call (or test line) and the error, with ids blanked."""
    frames = FRAME.findall(traceback)
    call = next(
        (f"{path.rsplit('/', 1)[-1]}:{fn}" for path, fn in reversed(frames)
         if path.startswith("tempest/lib/services/")),
        None,
    )
    if call is None:
        call = next(
            (f"{path.rsplit('/', 1)[-1]}:{fn}" for path, fn in reversed(frames)
             if path.startswith("tempest/api/")),
            "?",
        )
    lines = [ln for ln in traceback.strip().splitlines() if ln.strip()]
    error = next(
        (i for i in range(len(lines) - 1, -1, -1)
         if re.match(r"^[\w.]+(Error|Exception|Failure|NotFound|Forbidden|Conflict|BadRequest"
                     r"|Unauthorized|InvalidCredentials|ServerFault|Mismatch|[A-Z]\w+):", lines[i])),
        max(len(lines) - 1, 0),
    )
    text = " | ".join(lines[error:error + 3]) if lines else "?"
    return call, IDS.sub("<id>", text)[:400]


CLASS_ENTRY = re.compile(r"^(setUpClass|tearDownClass) \((.+)\)$")


def class_of(test_id):
    return test_id.split("[", 1)[0].rsplit(".", 1)[0]


def expand_class_entries(tests, listed):
    """Replaces class-level setup entries by the tests of that class."""
    by_class = collections.defaultdict(list)
    for test_id in listed:
        by_class[class_of(test_id)].append(test_id)
    for entry_id in [t for t in tests if CLASS_ENTRY.match(t)]:
        kind, cls = CLASS_ENTRY.match(entry_id).groups()
        if kind != "setUpClass" or not by_class.get(cls):
            continue
        entry = tests.pop(entry_id)
        for test_id in by_class[cls]:
            tests.setdefault(test_id, entry)


def main():
    path, out_dir = sys.argv[1], sys.argv[2]
    tests = read_tests(path)
    if len(sys.argv) > 3:
        with open(sys.argv[3]) as f:
            listed = [line.strip() for line in f if line.strip().startswith("tempest.")]
        expand_class_entries(tests, listed)
    counts = collections.Counter()
    skip_reasons = collections.Counter()
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["test", "status"])
        for test_id in sorted(tests):
            status = tests[test_id]["status"]
            # testtools reports expected failures and unexpected successes
            # separately; count them with the outcome a reader expects.
            bucket = {"success": "passed", "xfail": "passed", "skip": "skipped"}.get(
                status, "failed"
            )
            counts[bucket] += 1
            writer.writerow([test_id, status])
            if bucket == "skipped":
                skip_reasons[detail_text(tests[test_id], "reason").strip()] += 1
    with open(os.path.join(out_dir, "failures.txt"), "w") as f:
        for test_id in sorted(tests):
            test = tests[test_id]
            if test["status"] in ("success", "xfail", "skip"):
                continue
            f.write("=" * 70 + "\n")
            f.write(f"{test['status'].upper()}: {test_id}\n")
            f.write("-" * 70 + "\n")
            f.write(detail_text(test, "traceback") + "\n")
    causes = collections.defaultdict(list)
    for test_id, test in tests.items():
        if test["status"] not in ("success", "xfail", "skip"):
            causes[cause_of(detail_text(test, "traceback"))].append(test_id)
    with open(os.path.join(out_dir, "causes.txt"), "w") as f:
        for (call, error), ids in sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            f.write(f"{len(ids):4d}  {call}\n      {error}\n")
            for test_id in sorted(ids):
                f.write(f"        {test_id}\n")
    with open(os.path.join(out_dir, "skips.txt"), "w") as f:
        for reason, n in skip_reasons.most_common():
            f.write(f"{n:4d}  {reason}\n")
    print(
        f"tempest: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped"
    )


if __name__ == "__main__":
    main()

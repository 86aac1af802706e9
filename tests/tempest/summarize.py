"""Summarizes a Tempest run from its subunit stream.

Usage: python summarize.py RESULTS.subunit OUT_DIR

Writes OUT_DIR/results.csv (test id, status), OUT_DIR/failures.txt (each
failed test with its traceback) and OUT_DIR/skips.txt (each skip reason with
its count), and prints the totals as the last line. A class whose setup
failed shows up once, as a failed `setUpClass (module.Class)` entry.
"""

import collections
import csv
import os
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


def main():
    path, out_dir = sys.argv[1], sys.argv[2]
    tests = read_tests(path)
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
    with open(os.path.join(out_dir, "skips.txt"), "w") as f:
        for reason, n in skip_reasons.most_common():
            f.write(f"{n:4d}  {reason}\n")
    print(
        f"tempest identity: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped"
    )


if __name__ == "__main__":
    main()

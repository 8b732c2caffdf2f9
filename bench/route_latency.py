#!/usr/bin/python3
"""Benchmark of routing latency: from the end of the sending association to the task's creation.

Run by `make bench` as

    /usr/bin/python3 bench/route_latency.py --ferry build/ferry

It starts `ferry serve` (receiver + router) with one rule routing every CT series, sends a series
of small CT instances with DCMTK's storescu, and measures the time from storescu's exit (its
association has been released) until the task folder with its task.json is in outgoing/. The
router completes a series `router.series_complete_grace` seconds after the last instance of a
series whose associations have all ended; the target is grace + 100 ms (mercure waits at least
61 s; Orthanc's StableAge is 60 s). Prints each run and the median overhead above the grace.

This is a benchmark, not a test: exit code 0 unless something broke.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from ferrytest import make_instance  # noqa: E402  (shared DICOM generator)
from pydicom.uid import generate_uid  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ferry", default="build/ferry")
    ap.add_argument("--grace", type=float, default=3.0, help="series_complete_grace in seconds")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--instances", type=int, default=20)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ferry-route-bench-")
    port = free_port()
    config = os.path.join(work, "ferry.json")
    with open(config, "w") as f:
        json.dump({"data_folder": os.path.join(work, "data"),
                   "receiver": {"port": port, "disk_reserve_mb": 0},
                   "router": {"series_complete_grace": args.grace},
                   "rules": {"ct": {"rule": "@Modality@ == 'CT'", "target": "pacs"}}}, f)
    log = open(os.path.join(work, "ferry.log"), "wb")
    proc = subprocess.Popen([args.ferry, "serve", "--config", config], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    env = dict(os.environ, TCP_NODELAY="1")
    latencies = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        outgoing = os.path.join(work, "data", "outgoing")
        for run in range(args.runs):
            folder = tempfile.mkdtemp(dir=work)
            series, study = generate_uid(), generate_uid()
            files = []
            for i in range(args.instances):
                path = os.path.join(folder, f"{i}.dcm")
                make_instance(path, series_uid=series, study_uid=study, instance_number=i + 1)
                files.append(path)
            before = set(glob.glob(os.path.join(outgoing, "*", "task.json")))
            p = subprocess.run(["storescu", "-aec", "FERRY", "127.0.0.1", str(port), *files],
                               env=env, capture_output=True, text=True)
            released = time.monotonic()
            if p.returncode != 0:
                print(p.stdout, p.stderr)
                return 1
            while True:
                now = glob.glob(os.path.join(outgoing, "*", "task.json"))
                if set(now) - before:
                    break
                if time.monotonic() - released > args.grace + 30:
                    print("no task was created within grace + 30 s")
                    return 1
                time.sleep(0.002)
            latency = time.monotonic() - released
            latencies.append(latency)
            print(f"run {run + 1}: {args.instances} instances, task created {latency * 1000:.0f} ms "
                  f"after the association ended (grace {args.grace * 1000:.0f} ms, overhead "
                  f"{(latency - args.grace) * 1000:+.0f} ms)")
        median = statistics.median(latencies)
        overhead = (median - args.grace) * 1000
        print(f"median: {median * 1000:.0f} ms = grace {overhead:+.0f} ms "
              f"(target grace + 100 ms: {'PASS' if overhead <= 100 else 'MISS'}); "
              f"mercure waits >= 61 s, Orthanc's StableAge 60 s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

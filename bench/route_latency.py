#!/usr/bin/python3
"""Benchmark of routing latency: from the end of the sending association to the task's creation.

Run by `make bench` as

    /usr/bin/python3 bench/route_latency.py --ferry build/ferry

It starts `ferry serve` (receiver, router, dispatcher) with one rule routing every CT series to a
folder target with `"streaming": false`, sends a series of small CT instances with DCMTK's
storescu, and measures from storescu's exit (its association has been released) until

- the router created the task: the time of the router's `task.created` event in the journal.
  The router completes a series `router.series_complete_grace` seconds after the last instance
  of a series whose associations have all ended; the target is grace + 100 ms (mercure waits at
  least 61 s; Orthanc's StableAge is 60 s);
- the task reached success/: the dispatcher claimed it and copied the series to the folder
  target (for information; the end-to-end benchmark with DICOM destinations is route_bench.py).

The rule does not stream: with streaming dispatch (the default) the task is created when the
series starts to arrive, and its completion only seals it, so "task created" would measure
nothing. The dispatcher claims a task within milliseconds of its creation, so polling outgoing/
for it, as this benchmark did before there was a dispatcher, would miss it; the journal records
the moment instead.

Prints each run and the medians. This is a benchmark, not a test: exit code 0 unless something
broke.
"""
import argparse
import datetime
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


def router_events(data, kind):
    """The router's journal events of one kind."""
    out = []
    for path in sorted(glob.glob(os.path.join(data, "journal", "router-*.jsonl"))):
        with open(path, "rb") as f:
            for line in f.read().split(b"\n"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == kind:
                    out.append(event)
    return out


def epoch(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ferry", default="build/ferry")
    ap.add_argument("--grace", type=float, default=3.0, help="series_complete_grace in seconds")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--instances", type=int, default=20)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ferry-route-bench-")
    port = free_port()
    data = os.path.join(work, "data")
    delivered = os.path.join(work, "delivered")
    os.mkdir(delivered)
    config = os.path.join(work, "ferry.json")
    with open(config, "w") as f:
        json.dump({"data_folder": data,
                   "receiver": {"port": port, "disk_reserve_mb": 0},
                   "router": {"series_complete_grace": args.grace},
                   "targets": {"folder": {"target_type": "folder", "folder": delivered}},
                   "rules": {"ct": {"rule": "@Modality@ == 'CT'", "target": "folder",
                                    "streaming": False}}}, f)
    log_path = os.path.join(work, "ferry.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([args.ferry, "serve", "--config", config], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    env = dict(os.environ, TCP_NODELAY="1")
    created_ms, success_ms = [], []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(log_path, "rb") as f:
                text = f.read()
            if b"dispatching to" in text and b"routing" in text and b"listening" in text:
                break
            time.sleep(0.05)
        for run in range(args.runs):
            folder = tempfile.mkdtemp(dir=work)
            series, study = generate_uid(), generate_uid()
            files = []
            for i in range(args.instances):
                path = os.path.join(folder, f"{i}.dcm")
                make_instance(path, series_uid=series, study_uid=study, instance_number=i + 1)
                files.append(path)
            p = subprocess.run(["storescu", "-aec", "FERRY", "127.0.0.1", str(port), *files],
                               env=env, capture_output=True, text=True)
            released_wall, released = time.time(), time.monotonic()
            if p.returncode != 0:
                print(p.stdout, p.stderr)
                return 1
            task = None
            while task is None or not os.path.exists(os.path.join(data, "success", task,
                                                                  "task.json")):
                if task is None:
                    found = [e for e in router_events(data, "task.created")
                             if e.get("series_uid") == series]
                    if found:
                        task = found[0]["task_id"]
                        created = epoch(found[0]["time"]) - released_wall
                if time.monotonic() - released > args.grace + 30:
                    print("the task did not reach success/ within grace + 30 s; ferry's log:")
                    with open(log_path, "rb") as f:
                        print(f.read().decode(errors="replace")[-3000:])
                    return 1
                time.sleep(0.002)
            success = time.monotonic() - released
            created_ms.append(created * 1000)
            success_ms.append(success * 1000)
            print(f"run {run + 1}: {args.instances} instances, task created {created * 1000:.0f} ms "
                  f"after the association ended (grace {args.grace * 1000:.0f} ms, overhead "
                  f"{round(created * 1000 - args.grace * 1000):+d} ms), in success/ after "
                  f"{success * 1000:.0f} ms")
        median = statistics.median(created_ms)
        overhead = median - args.grace * 1000
        print(f"median: task created {median:.0f} ms = grace {round(overhead):+d} ms "
              f"(target grace + 100 ms: {'PASS' if overhead <= 100 else 'MISS'}); in success/ "
              f"{statistics.median(success_ms):.0f} ms; mercure waits >= 61 s, Orthanc's "
              f"StableAge 60 s")
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

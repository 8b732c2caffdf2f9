#!/usr/bin/python3
"""Benchmark of reception from senders that leave Nagle's algorithm on.

Run by `make bench` as

    /usr/bin/python3 bench/nagle_bench.py --ferry build/ferry

Many DICOM stacks do not set TCP_NODELAY. Such a sender holds back each small segment until the
previous one is acknowledged, and a receiver that delays its acknowledgements (Linux: up to
40 ms) makes every C-STORE wait for that timer. ferry acknowledges at once (TCP_QUICKACK after
every read); storescp, like Orthanc and mercure, does not.

For two workloads — 120 small MR instances (64x64) and 100 CT instances (512x512) — it sends with
DCMTK's dcmsend, once with TCP_NODELAY=1 and once without (Nagle on), to `ferry receiver`
(durability "os" and "fsync") and to storescp, 3 runs each, and prints the median seconds and the
ratio of Nagle-on throughput to TCP_NODELAY throughput for each receiver. Target for ferry: at
least 0.8x on both workloads.

This is a benchmark, not a test: exit code 0 unless something broke.
"""
import argparse
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from ferrytest import make_instance  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

RUNS = 3
WORKLOADS = {"mr 120 x 64x64": (120, "MR", 64), "ct 100 x 512x512": (100, "CT", 512)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def make_workload(folder, count, modality, size):
    os.makedirs(folder)
    series, study = generate_uid(), generate_uid()
    for i in range(count):
        make_instance(os.path.join(folder, f"{i:04d}.dcm"), series_uid=series, study_uid=study,
                      modality=modality, instance_number=i + 1, rows=size, cols=size)
    return sorted(os.path.join(folder, n) for n in os.listdir(folder))


def start_receiver(kind, ferry, work, port):
    out = tempfile.mkdtemp(dir=work, prefix=f"{kind}-")
    log = open(os.path.join(out, "receiver.log"), "wb")
    if kind == "storescp":
        argv = ["storescp", "-pm", "+B", "-aet", "FERRY", "-od", out, str(port)]
        env = dict(os.environ, TCP_NODELAY="1")  # its own writes; acknowledgements are the point
    else:
        config = {"data_folder": os.path.join(out, "data"),
                  "receiver": {"port": port, "disk_reserve_mb": 0,
                               "durability": kind.split("-")[1]}}
        with open(os.path.join(out, "ferry.json"), "w") as f:
            json.dump(config, f)
        argv = [ferry, "receiver", "--config", os.path.join(out, "ferry.json"),
                "--log-level", "warn"]
        env = dict(os.environ)
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while not listening(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{kind} did not start; see {log.name}")
        time.sleep(0.05)
    return proc, log


def send(files, port, nagle):
    env = dict(os.environ)
    env.pop("TCP_NODELAY", None)
    if not nagle:
        env["TCP_NODELAY"] = "1"
    start = time.monotonic()
    p = subprocess.run(["dcmsend", "-aec", "FERRY", "-nh", "127.0.0.1", str(port)] + files,
                       capture_output=True, text=True, timeout=600, env=env)
    seconds = time.monotonic() - start
    if p.returncode != 0:
        raise SystemExit(f"dcmsend failed ({p.returncode}): {p.stderr[-2000:]}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ferry", required=True)
    args = parser.parse_args()
    ferry = os.path.abspath(args.ferry)
    work = tempfile.mkdtemp(prefix="ferry-nagle-bench-")
    try:
        rows = []
        for name, (count, modality, size) in WORKLOADS.items():
            files = make_workload(os.path.join(work, name.split()[0]), count, modality, size)
            for kind in ("ferry-os", "ferry-fsync", "storescp"):
                times = {True: [], False: []}
                for _ in range(RUNS):
                    for nagle in (False, True):
                        port = free_port()
                        proc, log = start_receiver(kind, ferry, work, port)
                        try:
                            subprocess.run(["sync"], check=False)
                            times[nagle].append(send(files, port, nagle))
                        finally:
                            os.killpg(proc.pid, signal.SIGTERM)
                            proc.wait(timeout=60)
                            log.close()
                nodelay, nagle = statistics.median(times[False]), statistics.median(times[True])
                rows.append((name, kind, nodelay, nagle, nodelay / nagle))
        print(f"nagle bench: dcmsend with TCP_NODELAY=1 vs Nagle on, medians of {RUNS} runs")
        print(f"  {'workload':<18} {'receiver':<12} {'nodelay s':>10} {'nagle s':>9} "
              f"{'nagle/nodelay throughput':>25}")
        for name, kind, nodelay, nagle, ratio in rows:
            target = "  (target >= 0.80)" if kind.startswith("ferry") else ""
            print(f"  {name:<18} {kind:<12} {nodelay:>10.3f} {nagle:>9.3f} {ratio:>24.2f}x"
                  f"{target}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

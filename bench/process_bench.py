#!/usr/bin/python3
"""Benchmark of the processor: per-job overhead and parallel throughput, against a bare
`podman run` of the same module on the same input, in the same run.

Run by `make bench` as

    /usr/bin/python3 bench/process_bench.py --ferry build/ferry

It starts Podman's Docker Engine API (`podman system service`, tests/images/containers.conf),
writes 20 one-series processing tasks of 50 small CT instances straight into a data folder's
processing/ (as the router publishes them: task.json, the instances, series.tags), and runs
`ferry processor` alone on them with the test module in copy mode (it copies its input to its
output), once with one job at a time and once with four. It measures:

- per-job time in ferry: from the job's `process.begin` (the task is claimed and its received
  images set aside) to its `process.complete` (the output is published in success/), from the
  processor's journal;
- the module alone: `podman run --rm` of the same image with the same mounts, environment and
  input (50 instances and the module's task.json), 5 times, timed around the CLI;
- overhead = median ferry job time (1 worker) - median bare `podman run` time; target <= 0.3 s;
- throughput = tasks per second from the first claim to the last publication, with 1 and 4
  workers; target: 4 workers >= 1.8x 1 worker (on 2 cores).

mercure runs one job at a time per processor and adds a pull check, a MONAI probe container and
a chown container per job; it is not installed here, so it is not measured.

Prints each figure and the ratios. This is a benchmark, not a test: exit code 0 unless something
broke.
"""
import argparse
import datetime
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from ferrytest import make_instance  # noqa: E402
from peers_podman import ENV, MODULE_IMAGE, PodmanService  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

TASKS = 20
INSTANCES = 50


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def events(data, kind):
    out = []
    for path in glob.glob(os.path.join(data, "journal", "processor-*.jsonl")):
        with open(path, "rb") as f:
            for line in f.read().split(b"\n"):
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") == kind:
                    out.append(e)
    return out


def make_series(folder):
    os.makedirs(folder)
    series = generate_uid()
    study = generate_uid()
    for i in range(INSTANCES):
        make_instance(os.path.join(folder, f"{generate_uid()}.dcm"), series_uid=series,
                      study_uid=study, instance_number=i + 1, rows=64, cols=64)
    with open(os.path.join(folder, "series.tags"), "w") as f:
        json.dump({"Modality": "CT", "SeriesInstanceUID": series}, f)
    return series


def task_json(task_id, series):
    return {
        "id": task_id,
        "info": {"action": "process", "uid": series, "uid_type": "series",
                 "triggered_rules": {"bench": True}, "applied_rule": "bench",
                 "patient_name": "BENCH", "mrn": "1", "acc": "1", "sender_address": "127.0.0.1",
                 "sender_aet": "BENCH", "receiver_aet": "FERRY", "mercure_version": "bench",
                 "mercure_appliance": "ferry", "mercure_server": "bench", "fail_stage": None},
        "dispatch": {},
        "process": {"module_name": "copy", "module_config": None, "settings": {},
                    "retain_input_images": False, "output": None},
        "study": {},
        "ferry": {"priority": "normal", "stage": "processing",
                  "created": datetime.datetime.now(datetime.timezone.utc).strftime(
                      "%Y-%m-%dT%H:%M:%S.%fZ")},
    }


def run_processor(ferry, work, template, podman, workers, settings, tasks=TASKS, label=""):
    data = os.path.join(work, f"data-{label}{workers}")
    for i in range(tasks):
        task_id = f"bench-{workers}-{i:02d}"
        dest = os.path.join(data, "processing", task_id)
        shutil.copytree(template["folder"], dest)
        with open(os.path.join(dest, "task.json"), "w") as f:
            json.dump(task_json(task_id, template["series"]), f)
    config = {
        "data_folder": data,
        "modules": {"copy": {"docker_tag": MODULE_IMAGE, "settings": settings}},
        "rules": {"bench": {"rule": "False", "action": "process", "processing_module": "copy"}},
        "processor": {"workers": workers, "docker_socket": podman.socket},
    }
    config_path = os.path.join(work, f"ferry-{label}{workers}.json")
    with open(config_path, "w") as f:
        json.dump(config, f)
    log = open(os.path.join(work, f"processor-{label}{workers}.log"), "wb")
    proc = subprocess.Popen([ferry, "processor", "--config", config_path], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while len(glob.glob(os.path.join(data, "success", "*"))) < tasks:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"processor with {workers} worker(s) did not finish; see "
                                 f"{log.name}")
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    begins = {e["task_id"]: parse_time(e["time"]) for e in events(data, "process.begin")}
    ends = {e["task_id"]: parse_time(e["time"]) for e in events(data, "process.complete")}
    jobs = [ends[t] - begins[t] for t in ends]
    module = [s["seconds"] for e in events(data, "process.step_complete")
              for s in [e["details"]]]
    span = max(ends.values()) - min(begins.values())
    return {"job_median": statistics.median(jobs), "module_median": statistics.median(module),
            "span": span, "throughput": tasks / span}


def bare_job(work, template, name):
    """A job folder for a bare `podman run` as ferry would prepare it; the podman command."""
    in_dir, out_dir = os.path.join(work, name, "in"), os.path.join(work, name, "out")
    shutil.copytree(template["folder"], in_dir)
    os.makedirs(out_dir)
    with open(os.path.join(in_dir, "task.json"), "w") as f:
        view = task_json("bare", template["series"])
        view.pop("ferry")
        view["process"]["settings"] = {"copy": True}
        json.dump(view, f)
    cmd = ["podman", "run", "--rm", "--network", "none", "--cap-drop", "ALL",
           "--user", f"{os.getuid()}:{os.getgid()}",
           "-v", f"{in_dir}:/tmp/data:rw", "-v", f"{out_dir}:/tmp/output:rw",
           "-e", "MERCURE_IN_DIR=/tmp/data", "-e", "MERCURE_OUT_DIR=/tmp/output", MODULE_IMAGE]
    return cmd, out_dir


def bare_podman_runs(work, template, label, runs=5):
    times = []
    for i in range(runs):
        cmd, out_dir = bare_job(work, template, f"bare-{label}-{i}")
        start = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
        times.append(time.monotonic() - start)
        if p.returncode != 0 or len(os.listdir(out_dir)) != INSTANCES:
            raise SystemExit(f"bare podman run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return times


def engine_ceiling(work, template, runs=8, parallel=4):
    """How much faster `podman run` of the module gets when `parallel` run at once: the
    container engine's own limit on parallel jobs, whoever starts them."""
    def batch(count_at_once):
        jobs = [bare_job(work, template, f"ceiling-{count_at_once}-{i}")[0] for i in range(runs)]
        procs = []
        start = time.monotonic()
        for cmd in jobs:
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, env=ENV))
            if len(procs) >= count_at_once:
                procs.pop(0).wait(timeout=300)
        for p in procs:
            p.wait(timeout=300)
        return time.monotonic() - start
    return batch(1) / batch(parallel)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ferry", required=True)
    args = parser.parse_args()
    ferry = os.path.abspath(args.ferry)
    work = tempfile.mkdtemp(prefix="ferry-process-bench-")
    try:
        with PodmanService(work) as podman:
            template = {"folder": os.path.join(work, "series")}
            template["series"] = make_series(template["folder"])
            bare = bare_podman_runs(work, template, "before")
            one = run_processor(ferry, work, template, podman, 1, {"copy": True})
            four = run_processor(ferry, work, template, podman, 4, {"copy": True})
            bare_more = bare_podman_runs(work, template, "after")
            ceiling = engine_ceiling(work, template)
            slow = {"copy": True, "sleep": 2}
            slow_one = run_processor(ferry, work, template, podman, 1, slow, 8, "slow")
            slow_four = run_processor(ferry, work, template, podman, 4, slow, 8, "slow")
        bare_median = statistics.median(bare + bare_more)
        overhead = one["job_median"] - bare_median
        ratio = four["throughput"] / one["throughput"]
        print(f"process bench: {TASKS} tasks of {INSTANCES} instances, module copies its input "
              f"({MODULE_IMAGE})")
        print(f"  bare podman run (10 runs):    median {bare_median:.3f} s "
              f"(min {min(bare + bare_more):.3f}, max {max(bare + bare_more):.3f})")
        print(f"  ferry job, 1 worker:          median {one['job_median']:.3f} s "
              f"(module in its container {one['module_median']:.3f} s)")
        print(f"  overhead per job:             {overhead:+.3f} s above a bare podman run "
              f"(target <= 0.300 s)")
        print(f"  throughput, 1 worker:         {one['throughput']:.2f} tasks/s "
              f"({one['span']:.2f} s for {TASKS})")
        print(f"  throughput, 4 workers:        {four['throughput']:.2f} tasks/s "
              f"({four['span']:.2f} s for {TASKS}); job median {four['job_median']:.3f} s")
        print(f"  4 workers / 1 worker:         {ratio:.2f}x (target >= 1.8x on "
              f"{os.cpu_count()} cores)")
        print(f"  the engine's own ceiling:     {ceiling:.2f}x (8 bare podman runs, 4 at a time "
              f"vs one at a time)")
        slow_ratio = slow_four["throughput"] / slow_one["throughput"]
        print(f"  module that also waits 2 s:   1 worker {slow_one['throughput']:.2f} tasks/s, "
              f"4 workers {slow_four['throughput']:.2f} tasks/s: {slow_ratio:.2f}x "
              f"(8 tasks each)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

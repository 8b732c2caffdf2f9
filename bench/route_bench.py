#!/usr/bin/python3
"""Benchmark of routing end to end: from the first byte sent to the last instance on the destination's disk.

Run by `make bench` as

    /usr/bin/python3 bench/route_bench.py --ferry build/ferry

A sender (DCMTK dcmsend, one association, TCP_NODELAY=1) sends generated data to a router, whose
only rule routes everything to a DCMTK storescp destination. The time measured runs from just
before dcmsend starts until the destination's output folder holds every instance completely:
storescp writes each file under its final name and closes it once it is complete, so the
benchmark counts the distinct files of inotify IN_CLOSE_WRITE events on that folder.

Systems (--systems takes a comma list of these):
  storescp            the lower bound: dcmsend sends straight to the destination
  ferry-streaming     `ferry serve`, a series-level route rule with streaming dispatch (the
                      default): each instance is sent on as soon as it is received
  ferry-no-streaming  the same with `"streaming": false`: a series is sent once it is complete,
                      router.series_complete_grace (3 s) after the sending association ended
  orthanc             Orthanc (Debian) with a Lua OnStoredInstance script that does
                      Delete(SendToModality(instanceId, 'dest'))
  ferry-streaming-x4  fan-out: one rule, a list of 4 targets, each its own storescp; the time is
                      until the last destination holds everything
  orthanc-x4          fan-out: 4 SendToModality calls per instance, then Delete
  ferry-streaming-os  ferry-streaming with receiver.durability "os" (no fsync on receipt)

Orthanc runs once per workload (--orthanc-runs), the others --runs times (default 3); the median
is reported. orthanc-x4 is left out unless --full (or --systems) asks for it: on a 2-core machine
it takes 1-2.5 minutes for the ct workload and about 7 for the multi workload.

Workloads: ct, 500 CT instances of 512x512 16-bit (~513 KiB each) in one series; multi, 20
series of 100 instances of 256x256 16-bit (~129 KiB each) in one association (--quick: 100 CT,
5 series of 40). The data is generated once per run of this script into its temp folder.

Every run gets fresh destination storescp processes (--fork, --max-pdu 131072, TCP_NODELAY=1)
on free ports, a fresh router process and data folder. ferry runs with its defaults apart from
the rule and targets (receiver.durability "fsync", dispatcher.workers 4, grace 3 s). After each
ferry run the benchmark also waits for the tasks to reach success/ (not part of the time) and
checks that none failed. Every destination must hold exactly the SOP instances sent, or the run
counts as failed.

This is a benchmark, not a test: the exit code is 0 whether the targets are met or not, and
nonzero only when something broke (a storescp or ferry run failed, or the setup is missing
something). A failed Orthanc run (it is a reference) is reported loudly, but does not change the
exit code. A run fails when nothing arrives for --stall seconds after dcmsend ended.
"""

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import receive_bench as rb  # noqa: E402  (machine info, process accounting, DICOM header)
import ferrytest  # noqa: E402
from peers_dicom import StoreScp  # noqa: E402
from peers_orthanc import ORTHANC_BIN, OrthancPeer  # noqa: E402

MIB = 1024 * 1024

# Targets from the issue. Speed-up = Orthanc's seconds / the system's seconds; "x lower bound" =
# the system's seconds / storescp's seconds.
TARGET_STREAMING_VS_ORTHANC = 10.0
TARGET_STREAMING_VS_LOWER_BOUND = 1.5
TARGET_NO_STREAMING_VS_ORTHANC = 5.0

# name -> (modality, series, instances per series, rows, columns)
WORKLOADS = {
    "ct": ("CT", 1, 500, 512, 512),
    "multi": ("CT", 20, 100, 256, 256),
}
WORKLOADS_QUICK = {
    "ct": ("CT", 1, 100, 512, 512),
    "multi": ("CT", 5, 40, 256, 256),
}

ALL_SYSTEMS = ["storescp", "ferry-streaming", "ferry-no-streaming", "orthanc",
               "ferry-streaming-x4", "orthanc-x4", "ferry-streaming-os"]
DEFAULT_SYSTEMS = [s for s in ALL_SYSTEMS if s != "orthanc-x4"]
ORTHANC_AET = "ORTHANC"

# ---------------------------------------------------------------------------------------------
# Data


def generate_workload(spec, dest):
    """Writes the workload as dest/s<series>/i<instance>.dcm; returns (files in sending order,
    SOP Instance UIDs, total bytes)."""
    import numpy as np
    import uuid

    modality, series, per_series, rows, cols = spec
    root = "1.2.826.0.1.3680043.8.498." + str(uuid.uuid4().int)[:20]
    ds = rb._base_dataset(modality, rows, cols, root)  # the receive benchmark's realistic header
    rng = np.random.default_rng(12345)
    yy, xx = np.mgrid[0:rows, 0:cols]
    disc = ((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2) < (0.4 * min(rows, cols)) ** 2
    base = (rng.integers(0, 200, size=(rows, cols)) + disc * 1000).astype("<u2")
    files, uids, total = [], [], 0
    for s in range(series):
        folder = dest / f"s{s + 1:02d}"
        folder.mkdir(parents=True)
        ds.SeriesInstanceUID = f"{root}.2.{s + 1}"
        ds.SeriesNumber = str(s + 1)
        ds.SeriesDescription = f"AXIAL {s + 1}"
        for n in range(per_series):
            img = base.copy()
            img[n % rows, :] += (n % 97) + 1
            img[:, (n * 7 + s) % cols] += 50
            ds.SOPInstanceUID = f"{root}.3.{s + 1}.{n + 1}"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = str(n + 1)
            z = -100.0 + n * float(ds.SliceThickness)
            ds.ImagePositionPatient = ["-190.0", "-190.0", f"{z:.1f}"]
            ds.SliceLocation = f"{z:.1f}"
            ds.PixelData = img.tobytes()
            ds["PixelData"].VR = "OW"
            path = folder / f"i{n + 1:04d}.dcm"
            ds.save_as(path, write_like_original=False)
            files.append(str(path))
            uids.append(ds.SOPInstanceUID)
            total += path.stat().st_size
    return files, uids, total


# ---------------------------------------------------------------------------------------------
# Completion: inotify IN_CLOSE_WRITE on the destinations' output folders.

_IN_CLOSE_WRITE = 0x00000008
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")
_libc = ctypes.CDLL(None, use_errno=True)


class CloseWatcher:
    """Counts the distinct files closed after writing in each of some folders (not recursive)."""

    def __init__(self, folders):
        self.fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.names = [set() for _ in folders]
        self.wds = {}
        for i, folder in enumerate(folders):
            wd = _libc.inotify_add_watch(self.fd, os.fsencode(folder), _IN_CLOSE_WRITE)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            self.wds[wd] = i

    def wait(self, timeout):
        """Reads what arrived within `timeout` seconds; returns whether anything did."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return True
            pos = 0
            while pos < len(buf):
                wd, mask, _, length = _EVENT.unpack_from(buf, pos)
                name = buf[pos + _EVENT.size:pos + _EVENT.size + length].rstrip(b"\0")
                pos += _EVENT.size + length
                if mask & _IN_CLOSE_WRITE and name and wd in self.wds:
                    self.names[self.wds[wd]].add(name)

    def counts(self):
        return [len(n) for n in self.names]

    def close(self):
        os.close(self.fd)


# ---------------------------------------------------------------------------------------------
# Systems under test. start() returns (host port, called AE title) to send to; finish() waits
# for what follows the measured part and returns notes and problems.


class Direct:
    """The lower bound: the sender talks to the destination itself."""

    def __init__(self, dests):
        self.dests = dests
        self.proc = None

    def start(self):
        return self.dests[0].port, self.dests[0].aet

    def finish(self, workload, deadline):
        return {}, []

    def stop(self):
        pass

    def logs(self):
        return {}


class FerryRouter:
    def __init__(self, run_dir, binary, dests, streaming, durability):
        self.dests = dests
        targets = {}
        for i, d in enumerate(dests):
            name = "dest" if len(dests) == 1 else f"dest{i + 1}"
            targets[name] = {"target_type": "dicom", "ip": "127.0.0.1", "port": d.port,
                             "aet_target": d.aet}
        rule = {"rule": "True", "target": list(targets) if len(targets) > 1 else "dest"}
        if not streaming:
            rule["streaming"] = False
        ferrytest.FERRY_BIN = str(binary)
        (run_dir / "ferry").mkdir(parents=True)
        self.ferry = ferrytest.Ferry(str(run_dir / "ferry"), mode="serve",
                                     receiver={"durability": durability},
                                     extra={"targets": targets, "rules": {"all": rule}})
        self.proc = None

    def start(self):
        self.ferry.start()
        self.proc = self.ferry.proc
        # The receiver listens; the router and the dispatcher are separate services that
        # `serve` starts at the same time: wait until both say they are running.
        ferrytest.wait_for(lambda: "dispatching to" in self.ferry.log_text()
                           and "routing" in self.ferry.log_text(), 30,
                           what="ferry's router and dispatcher to start")
        return self.ferry.port, "FERRY"

    def finish(self, workload, deadline):
        """Waits until every task of the run is in success/ or error/."""
        data = Path(self.ferry.data)
        want = workload["series"]
        t0 = time.perf_counter()
        while time.monotonic() < deadline:
            done = [p for stage in ("success", "error") for p in (data / stage).glob("*/task.json")]
            if len(done) >= want:
                break
            time.sleep(0.02)
        waited = time.perf_counter() - t0
        ok = list((data / "success").glob("*/task.json"))
        failed = list((data / "error").glob("*/task.json"))
        problems = []
        if failed:
            problems.append(f"{len(failed)} ferry task(s) in error/: "
                            f"{failed[0].read_text()[:2000]}")
        if len(ok) < want:
            problems.append(f"only {len(ok)} of {want} ferry task(s) reached success/")
        # Errors that ferry logged but recovered from do not fail the run; they are reported.
        errors = [line for line in self.ferry.log_text().splitlines() if " error " in line[:40]]
        return {"tasks_success": len(ok), "tasks_error": len(failed),
                "tasks_done_after_s": waited, "ferry_error_lines": errors[:5],
                "ferry_error_count": len(errors)}, problems

    def stop(self):
        with contextlib.suppress(Exception):
            self.ferry.stop(timeout=30)
        self.ferry.kill()

    def logs(self):
        with contextlib.suppress(OSError):
            return {"ferry": self.ferry.log_text()[-4000:]}
        return {}


class OrthancRouter:
    def __init__(self, run_dir, dests):
        self.dests = dests
        run_dir.mkdir(parents=True, exist_ok=True)
        modalities = {}
        for i, d in enumerate(dests):
            modalities[f"dest{i + 1}"] = [d.aet, "127.0.0.1", d.port]
        sends = "".join(f"  SendToModality(instanceId, 'dest{i + 1}')\n"
                        for i in range(len(dests)))
        lua = run_dir / "autorouting.lua"
        lua.write_text("function OnStoredInstance(instanceId, tags, metadata, origin)\n"
                       + ("  Delete(SendToModality(instanceId, 'dest1'))\n" if len(dests) == 1
                          else sends + "  Delete(instanceId)\n")
                       + "end\n")
        self.peer = OrthancPeer(str(run_dir), aet=ORTHANC_AET, dicomweb=False,
                                extra_config={"LuaScripts": [str(lua)],
                                              "DicomModalities": modalities})
        self.proc = None

    def start(self):
        self.peer.start()
        self.proc = self.peer.proc
        return self.peer.dicom_port, self.peer.aet

    def finish(self, workload, deadline):
        """Waits (briefly) until the Lua script has deleted every instance."""
        t0 = time.perf_counter()
        left = None
        end = min(deadline, time.monotonic() + 30)
        while time.monotonic() < end:
            with contextlib.suppress(Exception):
                left = int(self.peer.statistics()["CountInstances"])
            if left == 0:
                break
            time.sleep(0.1)
        return {"orthanc_instances_left": left,
                "orthanc_emptied_after_s": time.perf_counter() - t0}, []

    def stop(self):
        self.peer.stop()

    def logs(self):
        return {"orthanc": self.peer.log_text()[-4000:]}


def make_system(name, run_dir, dests, args):
    if name == "storescp":
        return Direct(dests)
    if name.startswith("orthanc"):
        return OrthancRouter(run_dir / "orthanc", dests)
    if name.startswith("ferry"):
        return FerryRouter(run_dir, args.ferry, dests, streaming=name != "ferry-no-streaming",
                           durability="os" if name.endswith("-os") else "fsync")
    raise ValueError(name)


def destination_count(name):
    return 4 if name.endswith("-x4") else 1


def cpu_by_process(pgid):
    """{name: CPU seconds} of the live processes of a process group; ferry's services are named
    by their subcommand (`ferry receiver ...`)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in rb.group_pids(pgid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        name = os.path.basename(argv[0].decode(errors="replace"))
        if name == "ferry" and len(argv) > 1:
            name = argv[1].decode(errors="replace")
        out[name] = out.get(name, 0.0) + sum(int(x) for x in fields[11:15]) / tick
    return out


# ---------------------------------------------------------------------------------------------
# One timed run


def run_once(name, workload, args, tmp_root):
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-{workload['name']}-", dir=tmp_root))
    n = workload["count"]
    result = {"system": name, "workload": workload["name"], "instances": n,
              "destinations": destination_count(name), "ok": False}
    dests, system, watcher, sender = [], None, None, None
    problems = []
    try:
        for i in range(destination_count(name)):
            dests.append(StoreScp(str(run_dir), aet=f"DEST{i + 1}", name=f"dest{i + 1}",
                                  extra_args=["--fork", "--max-pdu", "131072"],
                                  verbose=False).start())
        system = make_system(name, run_dir, dests, args)
        port, aet = system.start()
        os.sync()  # earlier runs' dirty pages must not be written back during this one
        watcher = CloseWatcher([d.out for d in dests])
        cpu0 = cpu_by_process(system.proc.pid) if system.proc else None
        load0 = rb.load_average()
        pressure0 = rb.pressure_totals()
        sent_at = []
        t0 = time.perf_counter()
        sender = subprocess.Popen(["dcmsend", "-aet", "BENCH", "-aec", aet, "-nh",
                                   "127.0.0.1", str(port), *workload["files"]],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=ferrytest.TOOL_ENV,
                                  start_new_session=True)

        def wait_sender():
            out = sender.stdout.read()
            sender.wait()
            sent_at.append(time.perf_counter())
            result["sender_output"] = out.decode(errors="replace")[-2000:]

        waiter = threading.Thread(target=wait_sender, daemon=True)
        waiter.start()
        deadline = time.monotonic() + args.timeout
        done_at = [None] * len(dests)
        progress, progress_at = None, time.monotonic()
        while time.monotonic() < deadline:
            watcher.wait(0.05)
            now = time.perf_counter()
            if watcher.counts() != progress:
                progress, progress_at = watcher.counts(), time.monotonic()
            elif sent_at and time.monotonic() - progress_at > args.stall:
                problems.append(f"stalled: the destinations hold {progress} of {n} instance(s) "
                                f"and received nothing for {args.stall:.0f} s after dcmsend ended")
                break
            for i, c in enumerate(watcher.counts()):
                if c >= n and done_at[i] is None:
                    done_at[i] = now
            if all(done_at):
                break
            if sent_at and sender.returncode != 0:
                problems.append(f"dcmsend exited with {sender.returncode}: "
                                f"{result.get('sender_output', '')[-1000:]}")
                break
            if system.proc is not None and system.proc.poll() is not None:
                problems.append(f"{name} exited with {system.proc.returncode}")
                break
        result["counts"] = watcher.counts()
        if all(done_at):
            result["seconds"] = max(done_at) - t0
            result["per_destination_s"] = [t - t0 for t in done_at]
        elif not problems:
            problems.append(f"destinations hold {watcher.counts()} of {n} instance(s) after "
                            f"{args.timeout:.0f} s")
        waiter.join(timeout=max(1.0, deadline - time.monotonic()))
        if sent_at:
            result["sender_exit_s"] = sent_at[0] - t0
            if sender.returncode != 0 and not any("dcmsend" in p for p in problems):
                problems.append(f"dcmsend exited with {sender.returncode}")
        if system.proc is not None:
            cpu1 = cpu_by_process(system.proc.pid)
            result["cpu_by_process_s"] = {k: round(v - cpu0.get(k, 0.0), 3) for k, v in cpu1.items()}
            result["system_cpu_s"] = sum(result["cpu_by_process_s"].values())
        result["load_average_before"] = load0
        # Share of the run in which some task waited for a CPU / for IO (Linux PSI): high values
        # mean the machine was busy (the benchmark's own processes count too).
        pressure1, span = rb.pressure_totals(), time.perf_counter() - t0
        result["pressure_some"] = {k: round((pressure1[k] - pressure0[k]) / 1e6 / span, 3)
                                   if pressure0[k] is not None and pressure1[k] is not None
                                   else None for k in pressure0}
        if not problems:
            notes, more = system.finish(workload, time.monotonic() + args.timeout)
            result.update(notes)
            problems += more
        # Every destination holds exactly what was sent (storescp names files <modality>.<SOP
        # Instance UID>).
        want = {f"{workload['modality']}.{u}" for u in workload["uids"]}
        for d in dests:
            have = {p.name for p in Path(d.out).iterdir()}
            if have != want:
                problems.append(f"{d.aet} holds {len(have & want)} of {len(want)} instance(s) "
                                f"and {len(have - want)} other file(s)")
    except (AssertionError, OSError, subprocess.SubprocessError) as e:
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        if sender is not None and sender.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sender.pid, signal.SIGKILL)
            sender.wait()
        if watcher is not None:
            watcher.close()
        if system is not None:
            if problems:
                result["logs"] = system.logs()
            system.stop()
        for d in dests:
            d.stop()
    result["problems"] = problems
    result["ok"] = not problems
    # The run's files stay until the end (see receive_bench.py: deleting many files just before
    # the next run slows file creation on ext4 without a journal).
    return result


# ---------------------------------------------------------------------------------------------
# Reporting


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def summarize(results, workloads, systems):
    out = {}
    for w in workloads:
        for s in systems:
            runs = [r for r in results if r["system"] == s and r["workload"] == w["name"]]
            if not runs:
                continue
            good = [r for r in runs if r["ok"]]
            secs = statistics.median(r["seconds"] for r in good) if good and len(good) == len(runs) else None
            sent = [r["sender_exit_s"] for r in good if r.get("sender_exit_s") is not None]
            cpu = [r["system_cpu_s"] for r in good if r.get("system_cpu_s") is not None]
            out[(s, w["name"])] = {
                "system": s, "workload": w["name"], "runs": len(runs),
                "failed_runs": len(runs) - len(good), "seconds": secs,
                "all_seconds": [r.get("seconds") for r in runs],
                "sender_exit_s": statistics.median(sent) if sent else None,
                "system_cpu_s": statistics.median(cpu) if cpu else None,
                "instances_per_s": w["count"] / secs if secs else None,
            }
    return out


def verdicts(summary, workloads):
    """Per workload: speed-up over Orthanc and multiple of the lower bound, with targets."""
    rows = []
    for w in workloads:
        lower = summary.get(("storescp", w["name"]), {}).get("seconds")
        for s in ALL_SYSTEMS:
            x = summary.get((s, w["name"]))
            if x is None or s in ("storescp",):
                continue
            ref = "orthanc-x4" if s.endswith("-x4") else "orthanc"
            orthanc = summary.get((ref, w["name"]), {}).get("seconds")
            secs = x["seconds"]
            row = {"system": s, "workload": w["name"], "seconds": secs, "vs": ref,
                   "speedup_vs_orthanc": orthanc / secs if orthanc and secs else None,
                   "x_lower_bound": secs / lower if lower and secs else None, "checks": []}
            if s == "ferry-streaming":
                row["checks"] = [("speed-up vs Orthanc", ">=", TARGET_STREAMING_VS_ORTHANC,
                                  row["speedup_vs_orthanc"]),
                                 ("x lower bound", "<=", TARGET_STREAMING_VS_LOWER_BOUND,
                                  row["x_lower_bound"])]
            elif s == "ferry-no-streaming":
                row["checks"] = [("speed-up vs Orthanc", ">=", TARGET_NO_STREAMING_VS_ORTHANC,
                                  row["speedup_vs_orthanc"])]
            rows.append(row)
    return rows


def check_text(check):
    what, op, target, value = check
    if value is None:
        return f"{what} {op} {target:g}: n/a"
    ok = value >= target if op == ">=" else value <= target
    return f"{what} {value:.2f} ({op} {target:g}: {'PASS' if ok else 'MISS'})"


def print_report(summary, rows, workloads, systems):
    lines = []
    for w in workloads:
        lines.append("")
        lines.append(f"Workload {w['name']}: {w['series']} series x {w['per_series']} instances of "
                     f"{w['rows']}x{w['cols']}, {w['count']} instances, {w['bytes'] / MIB:.1f} MB, "
                     f"one association")
        hdr = (f"{'system':<20} {'dests':>5} {'runs':>4} {'seconds':>8} {'inst/s':>8} "
               f"{'sent s':>7} {'CPU s':>6} {'x faster than Orthanc':>21} {'x lower bound':>13}")
        lines.append(hdr)
        lines.append("-" * len(hdr))
        for s in systems:
            x = summary.get((s, w["name"]))
            if x is None:
                continue
            row = next((r for r in rows if r["system"] == s and r["workload"] == w["name"]), None)
            speed = fmt(row and row["speedup_vs_orthanc"], ".2f") if row else "-"
            lower = fmt(row and row["x_lower_bound"], ".2f") if row else ("1.00" if x["seconds"] else "-")
            if row and row["vs"] == "orthanc-x4" and speed != "-":
                speed += " (x4)"
            lines.append(f"{s:<20} {destination_count(s):>5} {x['runs']:>4} "
                         f"{fmt(x['seconds'], '.2f', 'FAILED'):>8} {fmt(x['instances_per_s'], '.0f'):>8} "
                         f"{fmt(x['sender_exit_s'], '.2f'):>7} {fmt(x['system_cpu_s'], '.2f'):>6} "
                         f"{speed:>21} {lower:>13}")
        runs = [f"{s} {' '.join(fmt(v, '.2f', 'X') for v in summary[(s, w['name'])]['all_seconds'])}"
                for s in systems if (s, w["name"]) in summary]
        lines.append("single runs (s): " + "; ".join(runs))
        checks = [(r["system"], c) for r in rows if r["workload"] == w["name"] for c in r["checks"]]
        if checks:
            lines.append("targets: " + "; ".join(f"{s}: {check_text(c)}" for s, c in checks))
    print("\n".join(lines), flush=True)
    return lines


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Systems: " + ", ".join(ALL_SYSTEMS))
    p.add_argument("--ferry", default="build/ferry", help="ferry binary (default: build/ferry)")
    p.add_argument("--runs", type=int, default=3, metavar="N",
                   help="runs per system and workload, the median is reported (default 3)")
    p.add_argument("--orthanc-runs", type=int, default=1, metavar="N",
                   help="runs of the (slow) Orthanc systems (default 1)")
    p.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS), metavar="LIST",
                   help="comma list of systems (default: all but orthanc-x4)")
    p.add_argument("--full", action="store_true",
                   help="add orthanc-x4 to the systems (about 10 more minutes on 2 cores)")
    p.add_argument("--workloads", default="ct,multi", metavar="LIST",
                   help="comma list of ct, multi (default: both)")
    p.add_argument("--quick", action="store_true",
                   help="smaller workloads (100 CT; 5 series of 40) and 1 run each, for a smoke test")
    p.add_argument("--tmp-dir", default=str(REPO / "build" / "bench-tmp"), metavar="DIR",
                   help="parent of the temp folder for data, spools and destinations "
                        "(default: build/bench-tmp; it decides which disk is measured)")
    p.add_argument("--results-dir", default=str(REPO / "build" / "bench-results"), metavar="DIR",
                   help="where the JSON results go (default: build/bench-results)")
    p.add_argument("--timeout", type=float, default=600, metavar="S",
                   help="give up on one run after S seconds (default 600)")
    p.add_argument("--stall", type=float, default=60, metavar="S",
                   help="give up on a run when nothing arrives for S seconds after dcmsend "
                        "ended (default 60)")
    p.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = p.parse_args(argv)
    args.system_names = []
    for s in args.systems.split(","):
        s = s.strip()
        if not s:
            continue
        if s not in ALL_SYSTEMS:
            p.error(f"unknown system {s!r}; choose from {', '.join(ALL_SYSTEMS)}")
        args.system_names.append(s)
    if args.full and "orthanc-x4" not in args.system_names:
        args.system_names.append("orthanc-x4")
    args.system_names = [s for s in ALL_SYSTEMS if s in args.system_names]
    args.workload_names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in args.workload_names:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}")
    if args.quick:
        args.runs = args.orthanc_runs = 1
    if args.runs < 1 or args.orthanc_runs < 1:
        p.error("--runs and --orthanc-runs must be at least 1")
    return args


def check_tools(args):
    missing = [t for t in ("dcmsend", "storescp") if shutil.which(t) is None]
    if any(s.startswith("orthanc") for s in args.system_names) and not os.access(ORTHANC_BIN, os.X_OK):
        missing.append(f"Orthanc ({ORTHANC_BIN}; Debian package orthanc, or --systems without it)")
    if any(s.startswith("ferry") for s in args.system_names):
        ferry = Path(args.ferry)
        if not ferry.is_absolute() and not ferry.exists() and (REPO / ferry).exists():
            ferry = REPO / ferry
        if not ferry.exists() or not os.access(ferry, os.X_OK):
            missing.append(f"ferry binary {args.ferry} (build it first)")
        args.ferry = ferry.resolve()
    return missing


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    missing = check_tools(args)
    if missing:
        for m in missing:
            print(f"route_bench: missing {m}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, rb._raise_interrupt)
    signal.signal(signal.SIGHUP, rb._raise_interrupt)

    specs = WORKLOADS_QUICK if args.quick else WORKLOADS
    started = datetime.datetime.now().astimezone()
    Path(args.tmp_dir).mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix="ferry-route-bench-", dir=args.tmp_dir))
    results, workloads = [], []
    interrupted = False
    t_start = time.monotonic()
    info = rb.machine_info()
    versions = {
        "dcmsend": rb.first_line(["dcmsend", "--version"]),
        "orthanc": rb.first_line([ORTHANC_BIN, "--version"])
        if any(s.startswith("orthanc") for s in args.system_names) else None,
        "ferry": rb.first_line([str(args.ferry), "version"])
        if any(s.startswith("ferry") for s in args.system_names) else None,
    }
    try:
        print(f"route_bench: {started:%Y-%m-%d %H:%M %Z} on {info['hostname']}: {info['nproc']} CPUs "
              f"({info['cpu']}), kernel {info['kernel']}, load average "
              f"{' '.join(f'{x:.2f}' for x in info['load_average_at_start'] or [])}")
        print(f"temp folder {tmp_root} ({rb.fs_type(tmp_root)}); systems: {', '.join(args.system_names)}; "
              f"runs {args.runs} (Orthanc {args.orthanc_runs}), median reported")
        print(", ".join(f"{k}: {v}" for k, v in versions.items() if v), flush=True)
        disk = rb.disk_probe(tmp_root / "disk-probe")
        info["disk_probe"] = disk
        print(f"disk probe (median of 200): create + write 8 KB {disk['create_us']:.0f} us; "
              f"+ fsync file and folder {disk['create_fsync_ms']:.2f} ms", flush=True)
        for name in args.workload_names:
            spec = specs[name]
            t = time.perf_counter()
            files, uids, total = generate_workload(spec, tmp_root / f"data-{name}")
            workloads.append({"name": name, "modality": spec[0], "series": spec[1],
                              "per_series": spec[2], "rows": spec[3], "cols": spec[4],
                              "count": len(files), "bytes": total, "files": files, "uids": uids})
            print(f"workload {name}: {spec[1]} series x {spec[2]} {spec[0]} instances of "
                  f"{spec[3]}x{spec[4]}, {total / MIB:.1f} MB, generated in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
        for w in workloads:
            rounds = max(args.runs, args.orthanc_runs)
            for k in range(rounds):
                # Rotate the order from round to round so that a drift in the machine's state
                # does not always favour the same system.
                order = args.system_names[k % len(args.system_names):] + \
                    args.system_names[:k % len(args.system_names)]
                for s in order:
                    if k >= (args.orthanc_runs if s.startswith("orthanc") else args.runs):
                        continue
                    res = run_once(s, w, args, tmp_root)
                    res["run"] = k + 1
                    results.append(res)
                    if res["ok"]:
                        extra = ""
                        if s.startswith("ferry"):
                            extra = " = " + " + ".join(
                                f"{k} {v:.2f}" for k, v in res["cpu_by_process_s"].items() if v > 0)
                        if "tasks_done_after_s" in res:
                            extra += f"; tasks in success/ {res['tasks_done_after_s']:.2f} s later"
                        if res.get("ferry_error_count"):
                            print(f"  WARNING: ferry logged {res['ferry_error_count']} error(s), e.g. "
                                  f"{res['ferry_error_lines'][0]}", file=sys.stderr, flush=True)
                        load = res["load_average_before"]
                        print(f"  {s:<20} {w['name']:<5} run {k + 1}: {res['seconds']:7.2f} s "
                              f"(dcmsend done at {fmt(res.get('sender_exit_s'), '.2f')} s, "
                              f"CPU {fmt(res.get('system_cpu_s'), '.2f')} s{extra}; load "
                              f"{fmt(load and load[0], '.2f')}, IO pressure "
                              f"{fmt(res['pressure_some'].get('io'), '.0%')})", flush=True)
                    else:
                        print(f"\n!!!!! {s} {w['name']} run {k + 1} FAILED:", file=sys.stderr)
                        for prob in res["problems"]:
                            print(f"!!!!!   {prob}", file=sys.stderr)
                        for n, t in res.get("logs", {}).items():
                            print(f"----- {n} (tail) -----\n{t}", file=sys.stderr)
                        print("", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\nroute_bench: interrupted", file=sys.stderr)
    finally:
        rb.kill_everything()
        if not args.keep:
            shutil.rmtree(tmp_root, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(args.tmp_dir)
            os.sync()
    if interrupted:
        return 130

    summary = summarize(results, workloads, args.system_names)
    rows = verdicts(summary, workloads)
    info["load_average_at_end"] = rb.load_average()
    print("\nRouting end to end: seconds from just before dcmsend starts until the last destination "
          "holds every instance\n(median of the runs; sent s = when dcmsend exited; CPU s = CPU "
          "time of the router's processes during the run)")
    report = print_report(summary, rows, workloads, args.system_names)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in info['load_average_at_end'] or [])}; "
          f"total {time.monotonic() - t_start:.0f} s")
    failures = [r for r in results if not r["ok"]]
    if failures:
        print(f"\n!!!!! {len(failures)} run(s) FAILED (see above); their figures are not reported.",
              file=sys.stderr)
    # Orthanc is a reference, not the system under test: its failures are reported (its figure
    # reads FAILED) but do not fail the benchmark.
    broken = [r for r in failures if not r["system"].startswith("orthanc")]
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / f"route-{started:%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps({
        "benchmark": "route",
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "machine": info, "versions": versions,
        "options": {"runs": args.runs, "orthanc_runs": args.orthanc_runs, "quick": args.quick,
                    "full": args.full,
                    "systems": args.system_names, "ferry": str(args.ferry)},
        "workloads": [{k: v for k, v in w.items() if k not in ("files", "uids")} for w in workloads],
        "summary": list(summary.values()),
        "verdicts": [{k: v for k, v in r.items() if k != "checks"} for r in rows],
        "runs": [{k: v for k, v in r.items() if k != "sender_output"} for r in results],
        "report": report,
    }, indent=2) + "\n")
    print(f"results: {out}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

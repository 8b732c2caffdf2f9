#!/usr/bin/python3
"""Benchmark of DICOM reception: ferry's receiver against DCMTK's storescp and Orthanc.

Run by `make bench` as

    /usr/bin/python3 bench/receive_bench.py --ferry build/ferry

It generates two workloads with pydicom (cached under build/bench-data/, keyed by their
parameters), sends each with DCMTK's dcmsend (1 sender, then 4 senders on disjoint quarters of
the files) to each receiver in turn, and prints a table of wall times and throughputs, the ratios
of ferry to the references with the targets, and ferry's peak RSS. The results are also written as
JSON to build/bench-results/receive-<timestamp>.json.

Receivers (--only takes a comma list of these; "ferry" means both ferry modes):
  storescp     DCMTK storescp, writes files, no fsync (--fork for concurrent associations)
  orthanc      Orthanc from Debian, default settings (SyncStorageArea, SQLite index), no plugins
  ferry-os     `ferry receiver` with receiver.durability "os"
  ferry-fsync  `ferry receiver` with receiver.durability "fsync"

Timing: from the start of the first dcmsend until every dcmsend has exited; dcmsend exits after
the response to its last C-STORE, so every instance has been acknowledged. The number of stored
instances is checked afterwards for every run (files on disk; Orthanc: REST /statistics).

Fairness: every receiver gets a fresh process and storage folder per run; the data is read once
before the runs (page cache); dirty pages are flushed (sync) before each run; the order of the
receivers rotates from round to round; storescp and Orthanc get TCP_NODELAY=1 (DCMTK otherwise
leaves Nagle's algorithm on); storescp receives PDUs of up to 128 KiB like ferry. The runs' files
are only deleted at the end, and a disk probe first waits (up to --settle s) while creating files
is slow: on ext4 without a journal, creating files within minutes after many were deleted nearby
costs ~20x more, which would skew whichever receiver runs next.

This is a benchmark, not a test: the exit code is 0 whether the targets are met or not, and
nonzero only when something broke (a receiver did not start or did not store every instance,
a sender failed, or the setup is missing something).
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GENERATOR_VERSION = 1  # bump when the generated data changes, so that caches are rebuilt
PARTS = 4  # files are spread round-robin over this many sub-folders, one per parallel sender
MIB = 1024 * 1024

# Targets from the issue (ratios of instances/s).
TARGET_OS_VS_STORESCP = 0.9
TARGET_FSYNC_VS_STORESCP = 0.6
TARGET_FSYNC_VS_ORTHANC = 4.0
TARGET_PEAK_RSS_MIB = 150.0

# The disk probe before the runs: above this many microseconds per file creation the file system
# is considered busy (on ext4 without a journal, creating files within minutes after many were
# deleted scans the inode table and costs ~0.5-1 ms instead of ~30 us). The benchmark waits up to
# --settle seconds for it to calm down.
SLOW_CREATE_US = 150
SETTLE_STEP_S = 20

ALL_RECEIVERS = ["storescp", "orthanc", "ferry-os", "ferry-fsync"]

# name -> (modality, instance count, rows, columns, series count)
WORKLOADS_DEFAULT = {
    "ct": ("CT", 500, 512, 512, 1),
    "mr": ("MR", 5000, 64, 64, 10),
}
WORKLOADS_QUICK = {
    "ct": ("CT", 100, 512, 512, 1),
    "mr": ("MR", 500, 64, 64, 10),
}

# ---------------------------------------------------------------------------------------------
# Process bookkeeping: every peer runs in its own session (process group), so that it and its
# children can be killed together, and so that a Ctrl-C on the terminal reaches only this script,
# which then stops them in order.

_live = []  # Popen objects still to be cleaned up


def spawn(argv, log_path, env=None, cwd=None):
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, start_new_session=True)
    finally:
        log.close()
    _live.append(proc)
    return proc


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_leftovers(proc):
    """SIGKILLs what is left of proc's process group, if anything, and only if it is still ours.

    Once the leader has been reaped its pid may be reused; a process group is ours only while the
    leader is ours or the group still has members (a pid is not reused while it names a group).
    """
    members = group_pids(proc.pid)
    if not members:
        return
    if proc.returncode is not None and proc.pid in members:
        return  # the pid now belongs to someone else's new group
    _signal_group(proc, signal.SIGKILL)


def stop_process(proc, sig=signal.SIGTERM, timeout=30.0):
    """Sends sig to the process group, waits up to timeout, then SIGKILLs the group.

    Returns the exit code of the leader (negative for a signal), or None if it had to be killed.
    """
    code = None
    if proc.poll() is None:
        _signal_group(proc, sig)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
    else:
        code = proc.returncode
    # Whatever is left in the group (forked children) goes too.
    _kill_leftovers(proc)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    if proc in _live:
        _live.remove(proc)
    return code


def kill_everything():
    for proc in list(_live):
        stop_process(proc, signal.SIGKILL, timeout=5)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------------------------------------
# Small helpers


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path, lines=30):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def group_pids(pgid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # Field 5 (pgrp) comes after the parenthesised command name.
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid:
                pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def group_peak_rss_mib(pgid):
    """Largest VmHWM among the live processes of a process group, in MiB."""
    values = [v for v in (vm_hwm_kib(p) for p in group_pids(pgid)) if v is not None]
    return max(values) / 1024.0 if values else None


def group_cpu_seconds(pgid):
    """CPU time (user + system, including reaped children) of the live processes of a group."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            continue
    return total / tick


def pressure_totals():
    """Microseconds some task stalled on CPU / IO since boot (PSI), or None without PSI."""
    out = {}
    for kind in ("cpu", "io"):
        try:
            with open(f"/proc/pressure/{kind}") as f:
                line = f.readline()
            out[kind] = int(line.rsplit("total=", 1)[1])
        except (OSError, ValueError, IndexError):
            out[kind] = None
    return out


def count_files(root, suffix=None, skip_dirs=()):
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs]
        for name in filenames:
            if suffix is None or name.endswith(suffix):
                n += 1
    return n


def fs_type(path):
    path = os.path.realpath(path)
    best, best_type = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, best_type = mnt, parts[2]
    except OSError:
        pass
    return best_type


def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        for line in (out.stdout + out.stderr).splitlines():
            line = line.strip()
            if line:
                return line
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "?"


def load_average():
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def machine_info():
    mem_total = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) * 1024
    except OSError:
        pass
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "hostname": socket.gethostname(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_total_bytes": mem_total,
        "kernel": platform.release(),
        "load_average_at_start": load_average(),
    }


# ---------------------------------------------------------------------------------------------
# Data generation


def workload_key(name, spec):
    modality, count, rows, cols, series = spec
    text = json.dumps([GENERATOR_VERSION, name, modality, count, rows, cols, series, PARTS])
    return f"{name}-{count}x{rows}x{cols}-s{series}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _base_dataset(modality, rows, cols, root):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ct = modality == "CT"
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if ct else ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if ct else "1.2.840.10008.5.1.4.1.1.4"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240312"
    ds.StudyTime = "101500.000000"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101732.250000"
    ds.AccessionNumber = "BENCH0001"
    ds.Modality = modality
    ds.Manufacturer = "FerryBench"
    ds.InstitutionName = "Bench Hospital"
    ds.ReferringPhysicianName = "Referrer^Robin"
    ds.StationName = "BENCH01"
    ds.StudyDescription = "CT CHEST ABDOMEN" if ct else "MR BRAIN"
    ds.ManufacturerModelName = "Synthetic"
    ds.PatientName = "Bench^Patient"
    ds.PatientID = "BENCH-PAT-1"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.PatientAge = "064Y"
    ds.BodyPartExamined = "CHEST" if ct else "HEAD"
    ds.SliceThickness = "1.0" if ct else "4.0"
    if ct:
        ds.KVP = "120"
        ds.DataCollectionDiameter = "500.0"
        ds.ReconstructionDiameter = "380.0"
        ds.GantryDetectorTilt = "0.0"
        ds.TableHeight = "160.0"
        ds.RotationDirection = "CW"
        ds.ExposureTime = "500"
        ds.XRayTubeCurrent = "250"
        ds.Exposure = "125"
        ds.FilterType = "BODY FILTER"
        ds.ConvolutionKernel = "B30f"
    else:
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "SK"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = "500.0"
        ds.EchoTime = "15.0"
        ds.NumberOfAverages = "1"
        ds.ImagingFrequency = "63.68"
        ds.ImagedNucleus = "1H"
        ds.MagneticFieldStrength = "1.5"
        ds.SpacingBetweenSlices = "4.0"
        ds.EchoTrainLength = "1"
        ds.FlipAngle = "90"
    ds.SoftwareVersions = "bench-1"
    ds.ProtocolName = ds.StudyDescription
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = f"{root}.1"
    ds.StudyID = "1"
    ds.AcquisitionNumber = "1"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = f"{root}.4"
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = ["0.742188", "0.742188"] if ct else ["3.59375", "3.59375"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if ct:
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
    else:
        ds.WindowCenter = "600"
        ds.WindowWidth = "1200"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.ImplementationVersionName = "FERRYBENCH"
    ds.file_meta = meta
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    _ = pydicom  # imported for its side effects on Dataset
    return ds


def generate_workload(name, spec, dest):
    """Writes the workload into dest/part<k>/ (k = instance % PARTS). Returns nothing."""
    import numpy as np
    import pydicom  # noqa: F401
    import uuid

    modality, count, rows, cols, series = spec
    # pydicom's UID root plus a random number: UIDs stay well below 64 characters.
    root = "1.2.826.0.1.3680043.8.498." + str(uuid.uuid4().int)[:20]
    ds = _base_dataset(modality, rows, cols, root)
    rng = np.random.default_rng(12345)
    # One random-ish image (noise on a bright disc), varied cheaply per instance.
    yy, xx = np.mgrid[0:rows, 0:cols]
    disc = ((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2) < (0.4 * min(rows, cols)) ** 2
    base = (rng.integers(0, 200, size=(rows, cols)) + disc * 1000).astype("<u2")
    for k in range(PARTS):
        (dest / f"part{k}").mkdir(parents=True, exist_ok=True)
    per_series = (count + series - 1) // series
    for i in range(count):
        s, n = divmod(i, per_series)
        img = base.copy()
        img[i % rows, :] += (i % 97) + 1
        img[:, (i * 7) % cols] += 50
        ds.SeriesInstanceUID = f"{root}.2.{s + 1}"
        ds.SeriesNumber = str(s + 1)
        ds.SeriesDescription = f"{'AXIAL 1mm' if modality == 'CT' else 'T1 SE'} {s + 1}"
        ds.SOPInstanceUID = f"{root}.3.{s + 1}.{n + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = str(n + 1)
        z = -100.0 + n * float(ds.SliceThickness)
        ds.ImagePositionPatient = ["-190.0", "-190.0", f"{z:.1f}"]
        ds.SliceLocation = f"{z:.1f}"
        ds.PixelData = img.tobytes()
        ds["PixelData"].VR = "OW"
        ds.save_as(dest / f"part{i % PARTS}" / f"{modality.lower()}{i:06d}.dcm", write_like_original=False)


def ensure_workload(name, spec, cache_root, use_cache, tmp_root):
    """Returns (path, list of part paths, file count, total bytes, generation seconds or None)."""
    key = workload_key(name, spec)
    if use_cache:
        final = cache_root / key
        marker = final / "COMPLETE"
        gen_seconds = None
        if not marker.exists():
            cache_root.mkdir(parents=True, exist_ok=True)
            if final.exists():
                shutil.rmtree(final)
            work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_root))
            try:
                t0 = time.perf_counter()
                print(f"generating {name} workload into {final} ...", flush=True)
                generate_workload(name, spec, work)
                gen_seconds = time.perf_counter() - t0
                (work / "COMPLETE").write_text(json.dumps({"name": name, "spec": spec}) + "\n")
                os.chmod(work, 0o755)
                os.rename(work, final)
            finally:
                if work.exists():
                    shutil.rmtree(work, ignore_errors=True)
        path = final
    else:
        path = tmp_root / f"data-{key}"
        t0 = time.perf_counter()
        print(f"generating {name} workload into {path} ...", flush=True)
        generate_workload(name, spec, path)
        gen_seconds = time.perf_counter() - t0
    parts = [path / f"part{k}" for k in range(PARTS)]
    files = [p for part in parts for p in part.iterdir() if p.name.endswith(".dcm")]
    total = sum(p.stat().st_size for p in files)
    return path, parts, len(files), total, gen_seconds


def disk_probe(folder, n=200):
    """Median latencies of creating a small file, without and with fsync of the file and folder.

    The probe files are left in place until the end (see run_once on deleting files).
    """
    folder.mkdir()
    data = os.urandom(8192)

    def one(path, sync):
        t = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if sync:
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return time.perf_counter() - t

    plain = [one(folder / f"a{i}", False) for i in range(n)]
    synced = [one(folder / f"b{i}", True) for i in range(n)]
    return {"create_us": statistics.median(plain) * 1e6, "create_fsync_ms": statistics.median(synced) * 1e3}


def warm_page_cache(parts):
    """Reads every file once so that no run pays for reading the data from disk."""
    for part in parts:
        for p in part.iterdir():
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass


# ---------------------------------------------------------------------------------------------
# Receivers. Each start() returns once the receiver accepts connections; stored() counts what it
# stored; peak_rss_mib() reads VmHWM just before stop().


class ReceiverError(Exception):
    pass


def wait_until(predicate, timeout, proc, what, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ReceiverError(f"{what} exited with code {proc.returncode} before accepting "
                                f"connections; log:\n{tail(log)}")
        if predicate():
            return
        time.sleep(0.05)
    raise ReceiverError(f"{what} did not accept connections within {timeout:.0f} s; log:\n{tail(log)}")


class Storescp:
    name = "storescp"
    aet = "STORESCP"

    def __init__(self, run_dir, max_pdu):
        self.dir = run_dir
        self.out = run_dir / "out"
        self.log = run_dir / "storescp.log"
        self.max_pdu = max_pdu
        self.proc = None

    def start(self):
        self.out.mkdir()
        self.port = free_port()
        env = dict(os.environ, TCP_NODELAY="1")
        argv = ["storescp", "--fork", "-aet", self.aet, "-od", str(self.out)]
        if self.max_pdu:
            argv += ["--max-pdu", str(self.max_pdu)]
        argv.append(str(self.port))
        self.proc = spawn(argv, self.log, env=env)
        wait_until(lambda: port_accepts(self.port), 30, self.proc, "storescp", self.log)

    def stored(self):
        return count_files(self.out)

    def peak_rss_mib(self):
        return None  # with --fork each association is a child that has already exited

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, timeout=10)


class Orthanc:
    name = "orthanc"
    aet = "ORTHANC"

    def __init__(self, run_dir):
        self.dir = run_dir
        self.log = run_dir / "orthanc.log"
        self.proc = None

    def start(self):
        self.port = free_port()
        self.http_port = free_port()
        while self.http_port == self.port:
            self.http_port = free_port()
        (self.dir / "storage").mkdir()
        (self.dir / "index").mkdir()
        config = {
            "Name": "ferry-bench",
            "StorageDirectory": str(self.dir / "storage"),
            "IndexDirectory": str(self.dir / "index"),
            "DicomAet": self.aet,
            "DicomPort": self.port,
            "DicomCheckCalledAet": False,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
        }
        cfg = self.dir / "orthanc.json"
        cfg.write_text(json.dumps(config, indent=2))
        env = dict(os.environ, TCP_NODELAY="1")
        self.proc = spawn(["Orthanc", str(cfg)], self.log, env=env, cwd=str(self.dir))
        wait_until(lambda: port_accepts(self.port) and self._system_ok(), 60, self.proc, "Orthanc",
                   self.log)

    def _get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def _system_ok(self):
        try:
            self._get("/system")
            return True
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def stored(self):
        return int(self._get("/statistics")["CountInstances"])

    def peak_rss_mib(self):
        return group_peak_rss_mib(self.proc.pid) if self.proc else None

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, timeout=60)


class Ferry:
    aet = "FERRY"

    def __init__(self, run_dir, binary, durability):
        self.dir = run_dir
        self.binary = binary
        self.durability = durability
        self.name = f"ferry-{durability}"
        self.log = run_dir / "ferry.log"
        self.data = run_dir / "data"
        self.proc = None
        self.exit_code = None

    def start(self):
        self.port = free_port()
        cfg = self.dir / "ferry.json"
        cfg.write_text(json.dumps({
            "data_folder": str(self.data),
            "receiver": {"port": self.port, "durability": self.durability, "disk_reserve_mb": 0},
        }, indent=2))
        self.proc = spawn([str(self.binary), "receiver", "--config", str(cfg)], self.log)
        wait_until(lambda: port_accepts(self.port), 30, self.proc, "ferry", self.log)

    def stored(self):
        # Instances are <data>/incoming/<series>/<sop>.dcm; tmp/ holds unfinished files only.
        return count_files(self.data, ".dcm", skip_dirs=("tmp",))

    def peak_rss_mib(self):
        return group_peak_rss_mib(self.proc.pid) if self.proc else None

    def stop(self):
        if self.proc is not None:
            self.exit_code = stop_process(self.proc, timeout=60)


def make_receiver(name, run_dir, args):
    if name == "storescp":
        return Storescp(run_dir, args.storescp_max_pdu)
    if name == "orthanc":
        return Orthanc(run_dir)
    if name == "ferry-os":
        return Ferry(run_dir, args.ferry, "os")
    if name == "ferry-fsync":
        return Ferry(run_dir, args.ferry, "fsync")
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------
# One timed run


def run_once(receiver_name, workload, senders, args, tmp_root):
    run_dir = Path(tempfile.mkdtemp(prefix=f"{receiver_name}-{workload['name']}-{senders}-",
                                    dir=tmp_root))
    result = {"receiver": receiver_name, "workload": workload["name"], "senders": senders,
              "instances": workload["count"], "bytes": workload["bytes"], "ok": False}
    recv = make_receiver(receiver_name, run_dir, args)
    senders_procs = []
    try:
        os.sync()  # the previous run's dirty pages must not be written back during this one
        recv.start()
        if senders == 1:
            inputs = [[str(p) for p in workload["parts"]]]
        else:
            inputs = [[str(p)] for p in workload["parts"]]
            if senders != PARTS:
                raise ValueError(f"senders must be 1 or {PARTS}")
        env = dict(os.environ, TCP_NODELAY="1")
        recv_cpu0 = group_cpu_seconds(recv.proc.pid)
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        pressure0 = pressure_totals()
        t0 = time.perf_counter()
        for k, inp in enumerate(inputs):
            argv = ["dcmsend", "-aet", f"BENCH{k}", "-aec", recv.aet, "-nh", "+sd",
                    "127.0.0.1", str(recv.port)] + inp
            senders_procs.append((spawn(argv, run_dir / f"dcmsend{k}.log", env=env),
                                  run_dir / f"dcmsend{k}.log"))
        # Blocking waits (Popen.wait with a timeout polls every 50 ms, too coarse for sub-second
        # runs); a watchdog kills the senders if a run hangs.
        timed_out = []

        def watchdog():
            timed_out.append(True)
            for proc, _ in senders_procs:
                _kill_leftovers(proc)

        timer = threading.Timer(args.timeout, watchdog)
        timer.daemon = True
        timer.start()
        try:
            codes = [proc.wait() for proc, _ in senders_procs]
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        pressure1 = pressure_totals()
        result["receiver_cpu_s"] = group_cpu_seconds(recv.proc.pid) - recv_cpu0
        result["senders_cpu_s"] = (children1.ru_utime + children1.ru_stime
                                   - children0.ru_utime - children0.ru_stime)
        # Share of the wall time in which some task waited for a CPU / for IO (Linux PSI); high
        # values mean the machine was busy (the benchmark itself contributes too).
        result["pressure_some"] = {k: (pressure1[k] - pressure0[k]) / 1e6 / seconds
                                   if pressure0[k] is not None and pressure1[k] is not None else None
                                   for k in pressure0}
        for proc, _ in senders_procs:
            stop_process(proc, signal.SIGKILL, timeout=5)
        result["seconds"] = seconds
        result["sender_exit_codes"] = codes
        result["stored"] = recv.stored()
        result["peak_rss_mib"] = recv.peak_rss_mib()
        problems = []
        if timed_out:
            codes = [None] * len(codes)
            problems.append(f"dcmsend did not finish within {args.timeout} s")
        bad = [(i, c) for i, c in enumerate(codes) if c not in (0, None)]
        for i, c in bad:
            problems.append(f"dcmsend #{i} exited with code {c}: {tail(senders_procs[i][1], 10)}")
        if result["stored"] != workload["count"]:
            problems.append(f"{receiver_name} stored {result['stored']} of {workload['count']} instances")
        result["problems"] = problems
        result["ok"] = not problems
    except ReceiverError as e:
        result["problems"] = [str(e)]
    finally:
        for proc, _ in senders_procs:
            if proc in _live:
                stop_process(proc, signal.SIGKILL, timeout=5)
        recv.stop()
        if isinstance(recv, Ferry) and recv.exit_code not in (0, None) and result.get("ok"):
            result.setdefault("warnings", []).append(f"ferry exited with code {recv.exit_code}")
        if result.get("problems"):
            logs = sorted(p.name for p in run_dir.glob("*.log"))
            result["logs"] = {n: tail(run_dir / n, 15) for n in logs}
        # The run's files stay until the whole benchmark is over: deleting thousands of files just
        # before the next run makes that run's file creations slower on some file systems (ext4
        # without a journal skips inodes freed in the last minute or more, scanning the inode
        # table for each new file), which would bias whichever receiver comes next.
    return result


# ---------------------------------------------------------------------------------------------
# Reporting


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def summarize(results, workloads, receivers, sender_counts, stat):
    """Returns {(receiver, workload, senders): summary dict}."""
    out = {}
    for w in workloads:
        for s in sender_counts:
            for r in receivers:
                runs = [x for x in results if (x["receiver"], x["workload"], x["senders"]) == (r, w["name"], s)]
                if not runs:
                    continue
                good = [x["seconds"] for x in runs if x.get("ok")]
                secs = None
                if good and len(good) == len(runs):
                    secs = min(good) if stat == "best" else statistics.median(good)
                rss = [x["peak_rss_mib"] for x in runs if x.get("peak_rss_mib") is not None]
                cpu = [x["receiver_cpu_s"] for x in runs if x.get("ok") and x.get("receiver_cpu_s") is not None]
                out[(r, w["name"], s)] = {
                    "receiver": r, "workload": w["name"], "senders": s,
                    "instances": w["count"], "bytes": w["bytes"], "runs": len(runs),
                    "failed_runs": sum(1 for x in runs if not x.get("ok")),
                    "seconds": secs,
                    "instances_per_s": w["count"] / secs if secs else None,
                    "mib_per_s": w["bytes"] / MIB / secs if secs else None,
                    "peak_rss_mib": max(rss) if rss else None,
                    "receiver_cpu_s": statistics.median(cpu) if cpu else None,
                    "all_seconds": [x.get("seconds") for x in runs],
                }
    return out


def ratio_rows(summary, workloads, sender_counts):
    rows = []
    for w in workloads:
        for s in sender_counts:
            for mode in ("os", "fsync"):
                f = summary.get((f"ferry-{mode}", w["name"], s))
                if f is None:
                    continue
                row = {"workload": w["name"], "senders": s, "mode": mode}
                for ref in ("storescp", "orthanc"):
                    r = summary.get((ref, w["name"], s))
                    ratio = None
                    if r and f["instances_per_s"] and r["instances_per_s"]:
                        ratio = f["instances_per_s"] / r["instances_per_s"]
                    row[f"vs_{ref}"] = ratio
                    target = None
                    if ref == "storescp":
                        target = TARGET_OS_VS_STORESCP if mode == "os" else TARGET_FSYNC_VS_STORESCP
                    elif mode == "fsync":
                        target = TARGET_FSYNC_VS_ORTHANC
                    row[f"target_vs_{ref}"] = target
                    if target is None:
                        verdict = None
                    elif ratio is None:
                        verdict = "n/a"
                    else:
                        verdict = "PASS" if ratio >= target else "MISS"
                    row[f"verdict_vs_{ref}"] = verdict
                rows.append(row)
    return rows


def print_report(summary, ratios, ferry_rss, workloads, sender_counts, receivers):
    lines = []
    lines.append("Throughput (wall time from the start of sending until every dcmsend has exited; "
                 "MB = 2^20 bytes;")
    lines.append("recv CPU s = CPU time (user + system) the receiver used during the transfer)")
    hdr = (f"{'receiver':<12} {'workload':<22} {'senders':>7} {'seconds':>8} {'instances/s':>11} {'MB/s':>8} "
           f"{'peak RSS MB':>11} {'recv CPU s':>10}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for w in workloads:
        wl = f"{w['name']} {w['count']}x{w['rows']}x{w['cols']}"
        for s in sender_counts:
            for r in receivers:
                x = summary.get((r, w["name"], s))
                if x is None:
                    continue
                secs = fmt(x["seconds"], ".2f", "FAILED")
                lines.append(f"{r:<12} {wl:<22} {s:>7} {secs:>8} {fmt(x['instances_per_s'], '.1f'):>11} "
                             f"{fmt(x['mib_per_s'], '.1f'):>8} {fmt(x['peak_rss_mib'], '.1f'):>11} "
                             f"{fmt(x['receiver_cpu_s'], '.2f'):>10}")
    if ratios:
        lines.append("")
        lines.append("Ratios of instances/s, ferry / reference (target, verdict)")
        hdr = f"{'workload':<9} {'senders':>7} {'ferry mode':<10} {'vs storescp':>11} {'target':>8} {'':<4}  {'vs Orthanc':>10} {'target':>7}"
        lines.append(hdr)
        lines.append("-" * len(hdr))
        for row in ratios:
            def cell(ref):
                ratio = fmt(row[f"vs_{ref}"], ".3f", "n/a")
                ratio = ratio + "x" if ratio != "n/a" else ratio
                t = row[f"target_vs_{ref}"]
                tt = f">= {t:g}x" if t is not None else "-"
                v = row[f"verdict_vs_{ref}"] or ""
                return ratio, tt, v
            a, at, av = cell("storescp")
            b, bt, bv = cell("orthanc")
            lines.append(f"{row['workload']:<9} {row['senders']:>7} {row['mode']:<10} {a:>11} {at:>8} {av:<4}  {b:>10} {bt:>7} {bv:<4}".rstrip())
    if ferry_rss is not None or any(r.startswith("ferry") for r in receivers):
        lines.append("")
        if ferry_rss is None:
            lines.append(f"ferry peak RSS (VmHWM just before stopping, max over all runs): n/a   "
                         f"target <= {TARGET_PEAK_RSS_MIB:g} MB")
        else:
            verdict = "PASS" if ferry_rss <= TARGET_PEAK_RSS_MIB else "MISS"
            lines.append(f"ferry peak RSS (VmHWM just before stopping, max over all runs): "
                         f"{ferry_rss:.1f} MB   target <= {TARGET_PEAK_RSS_MIB:g} MB   {verdict}")
    print("\n".join(lines), flush=True)
    return lines


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Receivers: " + ", ".join(ALL_RECEIVERS) + " (\"ferry\" = both ferry modes)")
    p.add_argument("--ferry", default="build/ferry", help="ferry binary (default: build/ferry)")
    p.add_argument("--quick", action="store_true", help="small smoke run: 100 CT + 500 MR instances")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run every combination N times and report the median (default 1)")
    p.add_argument("--best", action="store_true", help="with --repeat, report the best run instead of the median")
    p.add_argument("--only", default=",".join(ALL_RECEIVERS), metavar="LIST",
                   help="comma list of receivers to run (default: all)")
    p.add_argument("--workloads", default="ct,mr", metavar="LIST", help="comma list of ct, mr (default: both)")
    p.add_argument("--senders", default=f"1,{PARTS}", metavar="LIST",
                   help=f"comma list of sender counts, each 1 or {PARTS} (default: 1,{PARTS})")
    p.add_argument("--data-cache", default=str(REPO / "build" / "bench-data"), metavar="DIR",
                   help="where generated data is cached (default: build/bench-data)")
    p.add_argument("--no-cache", action="store_true", help="generate the data into the temp folder, do not cache it")
    p.add_argument("--tmp-dir", default=str(REPO / "build" / "bench-tmp"), metavar="DIR",
                   help="parent of the temp folder for the receivers' storage (default: build/bench-tmp, "
                        "away from /tmp, where other programs create and delete files); it decides "
                        "which disk is measured")
    p.add_argument("--results-dir", default=str(REPO / "build" / "bench-results"), metavar="DIR",
                   help="where the JSON results go (default: build/bench-results)")
    p.add_argument("--storescp-max-pdu", type=int, default=131072, metavar="BYTES",
                   help="storescp's --max-pdu; default 131072, ferry's default max_pdu, so that both "
                        "receive the same PDU size (0: storescp's own default, 16384)")
    p.add_argument("--settle", type=float, default=120, metavar="S",
                   help="wait up to S seconds before the runs while the disk probe finds file creation slow "
                        "(default 120; 0: do not wait)")
    p.add_argument("--timeout", type=float, default=1800, metavar="S", help="give up on one run after S seconds")
    args = p.parse_args(argv)
    only = []
    for item in args.only.split(","):
        item = item.strip().lower()
        if not item:
            continue
        names = ["ferry-os", "ferry-fsync"] if item == "ferry" else [item]
        for n in names:
            if n not in ALL_RECEIVERS:
                p.error(f"unknown receiver {item!r}; choose from {', '.join(ALL_RECEIVERS)} or ferry")
            if n not in only:
                only.append(n)
    args.receivers = [r for r in ALL_RECEIVERS if r in only]
    args.workload_names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in args.workload_names:
        if w not in WORKLOADS_DEFAULT:
            p.error(f"unknown workload {w!r}")
    try:
        args.sender_counts = [int(s) for s in args.senders.split(",") if s.strip()]
    except ValueError:
        p.error("--senders takes a comma list of numbers")
    for s in args.sender_counts:
        if s not in (1, PARTS):
            p.error(f"--senders: each count must be 1 or {PARTS}")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def check_tools(args):
    missing = []
    for tool in ["dcmsend"] + (["storescp"] if "storescp" in args.receivers else []) + \
            (["Orthanc"] if "orthanc" in args.receivers else []):
        if shutil.which(tool) is None:
            missing.append(tool)
    if any(r.startswith("ferry") for r in args.receivers):
        ferry = Path(args.ferry)
        if not ferry.is_absolute() and not ferry.exists() and (REPO / ferry).exists():
            ferry = REPO / ferry
        if not ferry.exists() or not os.access(ferry, os.X_OK):
            missing.append(f"ferry binary {args.ferry} (build it first, or pass --only storescp,orthanc)")
        args.ferry = ferry.resolve()
    try:
        import numpy  # noqa: F401
        import pydicom  # noqa: F401
    except ImportError as e:
        missing.append(f"python module {e.name} (Debian: python3-pydicom, python3-numpy; run with /usr/bin/python3)")
    return missing


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    missing = check_tools(args)
    if missing:
        for m in missing:
            print(f"receive_bench: missing {m}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)

    specs = WORKLOADS_QUICK if args.quick else WORKLOADS_DEFAULT
    started = datetime.datetime.now().astimezone()
    Path(args.tmp_dir).mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix="ferry-bench-", dir=args.tmp_dir))
    results = []
    failures = []
    interrupted = False
    try:
        info = machine_info()
        versions = {
            "dcmsend": first_line(["dcmsend", "--version"]),
            "storescp": first_line(["storescp", "--version"]) if "storescp" in args.receivers else None,
            "orthanc": first_line(["Orthanc", "--version"]) if "orthanc" in args.receivers else None,
            "ferry": first_line([str(args.ferry), "version"]) if any(r.startswith("ferry") for r in args.receivers) else None,
        }
        ferry_sha = None
        if any(r.startswith("ferry") for r in args.receivers):
            ferry_sha = hashlib.sha256(Path(args.ferry).read_bytes()).hexdigest()
        storage_fs = fs_type(tmp_root)
        print(f"receive_bench: {started:%Y-%m-%d %H:%M %Z} on {info['hostname']}: {info['nproc']} CPUs "
              f"({info['cpu']}), {fmt(info['mem_total_bytes'] and info['mem_total_bytes'] / 2**30, '.1f')} GiB RAM, "
              f"kernel {info['kernel']}, load average {' '.join(f'{x:.2f}' for x in info['load_average_at_start'] or [])}")
        print(f"receivers store into {tmp_root} ({storage_fs}); receivers: {', '.join(args.receivers)}; "
              f"repeat {args.repeat} ({'best' if args.best else 'median'})")
        if storage_fs in ("tmpfs", "ramfs"):
            print("WARNING: the temp folder is on a RAM file system; fsync costs nothing there. "
                  "Pass --tmp-dir on a real disk.", file=sys.stderr)
        print(", ".join(f"{k}: {v}" for k, v in versions.items() if v), flush=True)
        probes = 0
        while True:
            disk = disk_probe(tmp_root / f"disk-probe-{probes}")
            probes += 1
            print(f"disk probe in the temp folder (median of 200): create + write 8 KB {disk['create_us']:.0f} us; "
                  f"the same + fsync file + fsync folder {disk['create_fsync_ms']:.2f} ms", flush=True)
            if disk["create_us"] <= SLOW_CREATE_US or (probes - 1) * SETTLE_STEP_S >= args.settle:
                break
            print(f"  creating files is slow right now (usually: many files were deleted on this file "
                  f"system in the last minutes); waiting {SETTLE_STEP_S} s", flush=True)
            time.sleep(SETTLE_STEP_S)
        info["disk_probe"] = disk
        info["disk_probes"] = probes
        if disk["create_us"] > SLOW_CREATE_US:
            print(f"WARNING: creating a file takes {disk['create_us']:.0f} us here (above {SLOW_CREATE_US} us); "
                  "the figures will be lower and noisier than on a quiet file system", file=sys.stderr, flush=True)

        workloads = []
        for name in args.workload_names:
            spec = specs[name]
            path, parts, count, total, gen = ensure_workload(name, spec, Path(args.data_cache),
                                                             not args.no_cache, tmp_root)
            if count != spec[1]:
                raise RuntimeError(f"workload {name}: found {count} files in {path}, expected {spec[1]}")
            workloads.append({"name": name, "modality": spec[0], "count": count, "rows": spec[2],
                              "cols": spec[3], "series": spec[4], "bytes": total, "path": path,
                              "parts": parts, "generation_seconds": gen})
            print(f"workload {name}: {count} {spec[0]} instances {spec[2]}x{spec[3]} in {spec[4]} series, "
                  f"{total / MIB:.1f} MB" + (f" (generated in {gen:.1f} s)" if gen else " (cached)"), flush=True)

        needed = sum(w["bytes"] for w in workloads) * len(args.receivers) * len(args.sender_counts) * args.repeat
        free = shutil.disk_usage(tmp_root).free
        print(f"the runs keep their files until the end: about {needed * 1.1 / 2**30:.1f} GiB in {tmp_root} "
              f"({free / 2**30:.0f} GiB free)", flush=True)
        if needed * 1.2 > free:
            raise RuntimeError("not enough free disk space for the receivers' files; use --tmp-dir, "
                               "fewer --repeat or --quick")

        rotation = 0
        for w in workloads:
            warm_page_cache(w["parts"])
            for s in args.sender_counts:
                for rep in range(args.repeat):
                    # Rotate the order of the receivers from one round to the next, so that a
                    # drift in the machine's state (other work, file system) does not always
                    # favour the same receiver.
                    k = rotation % len(args.receivers)
                    rotation += 1
                    for r in args.receivers[k:] + args.receivers[:k]:
                        res = run_once(r, w, s, args, tmp_root)
                        res["repeat"] = rep + 1
                        results.append(res)
                        if res["ok"]:
                            extra = f", receiver CPU {res['receiver_cpu_s']:.2f} s"
                            if res.get("peak_rss_mib"):
                                extra += f", peak RSS {res['peak_rss_mib']:.1f} MB"
                            print(f"  {r:<12} {w['name']:<3} senders {s}  run {rep + 1}: {res['seconds']:7.2f} s, "
                                  f"{w['count'] / res['seconds']:8.1f} instances/s{extra}", flush=True)
                            for warn in res.get("warnings", []):
                                print(f"  WARNING: {warn}", file=sys.stderr, flush=True)
                        else:
                            failures.append(res)
                            print(f"\n!!!!! {r} {w['name']} senders {s} run {rep + 1} FAILED:", file=sys.stderr)
                            for prob in res.get("problems", []):
                                print(f"!!!!!   {prob}", file=sys.stderr)
                            for n, t in res.get("logs", {}).items():
                                print(f"----- {n} (tail) -----\n{t}", file=sys.stderr)
                            print("", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\nreceive_bench: interrupted; stopping everything", file=sys.stderr)
    finally:
        kill_everything()
        shutil.rmtree(tmp_root, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(args.tmp_dir)  # only if empty
        os.sync()  # write the freed inodes back, so that file creation recovers sooner (see SLOW_CREATE_US)

    if interrupted:
        return 130

    stat = "best" if args.best else "median"
    summary = summarize(results, workloads, args.receivers, args.sender_counts, stat)
    ratios = ratio_rows(summary, workloads, args.sender_counts)
    ferry_rss_values = [x["peak_rss_mib"] for x in results
                        if x["receiver"].startswith("ferry") and x.get("peak_rss_mib") is not None]
    ferry_rss = max(ferry_rss_values) if ferry_rss_values else None
    info["load_average_at_end"] = load_average()
    print("")
    report = print_report(summary, ratios, ferry_rss, workloads, args.sender_counts, args.receivers)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in info['load_average_at_end'] or [])} "
          f"(other work on the machine skews the figures)")
    if failures:
        print(f"\n!!!!! {len(failures)} run(s) FAILED (see above); their figures are not reported.",
              file=sys.stderr)

    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / f"receive-{started:%Y%m%dT%H%M%S}.json"
    doc = {
        "benchmark": "receive",
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "machine": info,
        "versions": versions,
        "storage_fs": storage_fs,
        "options": {"quick": args.quick, "repeat": args.repeat, "statistic": stat,
                    "receivers": args.receivers, "senders": args.sender_counts,
                    "storescp_max_pdu": args.storescp_max_pdu or 16384,
                    "ferry": str(args.ferry) if any(r.startswith("ferry") for r in args.receivers) else None,
                    "ferry_sha256": ferry_sha},
        "workloads": [{k: (str(v) if isinstance(v, Path) else v) for k, v in w.items() if k != "parts"}
                      for w in workloads],
        "targets": {"ferry_os_vs_storescp": TARGET_OS_VS_STORESCP,
                    "ferry_fsync_vs_storescp": TARGET_FSYNC_VS_STORESCP,
                    "ferry_fsync_vs_orthanc": TARGET_FSYNC_VS_ORTHANC,
                    "ferry_peak_rss_mib": TARGET_PEAK_RSS_MIB},
        "summary": list(summary.values()),
        "ratios": ratios,
        "ferry_peak_rss_mib": ferry_rss,
        "runs": results,
        "failed_runs": len(failures),
        "report": report,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults: {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared helpers for ferry's end-to-end tests.

Every test starts the real ferry binary (FERRY_BIN) on a free loopback port with a config in a
temporary folder, talks to it with real DCMTK tools, and stops it again. Waits are bounded.
"""
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid)

FERRY_BIN = os.environ.get("FERRY_BIN", os.path.join(os.path.dirname(__file__), "../../build/ferry"))
PYDICOM_TEST_FILES = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

# DCMTK tools: disable Nagle's algorithm as ferry does, or loopback transfers crawl.
TOOL_ENV = dict(os.environ, TCP_NODELAY="1")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def port_open(port):
    with contextlib.suppress(OSError):
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    return False


def run(cmd, timeout=120, check=False, env=TOOL_ENV, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed with {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def stop_process_group(proc, timeout=10):
    """Stops a peer started with start_new_session=True: SIGTERM to its process group, then
    SIGKILL after `timeout` seconds. Returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


class PeerProcess:
    """Base of the test peers that run as a process of their own (Orthanc, s3rver): subclasses
    set self.proc (started with start_new_session=True), self._log (its open log file) and
    self.log_path, and call wait_started() after starting it."""

    proc = None
    _log = None
    log_path = None
    stop_timeout = 15

    def wait_started(self, ready, name, timeout):
        """Waits until `ready()` or the process has exited; stops it and raises with the end of
        its log if it did not come up."""
        try:
            wait_for(lambda: self.proc.poll() is not None or ready(), timeout, interval=0.1,
                     what=name)
        except AssertionError:
            self.stop()
            raise AssertionError(f"{name} did not start:\n{self.log_text()[-3000:]}")
        if self.proc.poll() is not None:
            code = self.proc.returncode
            self.stop()
            raise AssertionError(f"{name} exited with {code}:\n{self.log_text()[-3000:]}")
        return self

    def stop(self, timeout=None):
        if self.proc is None:
            return
        stop_process_group(self.proc, timeout or self.stop_timeout)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        with contextlib.suppress(OSError, TypeError):
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        return ""


def echoscu(port, aec="FERRY", aet="ECHOSCU", extra=()):
    return run(["echoscu", "-aet", aet, "-aec", aec, *extra, "127.0.0.1", str(port)], timeout=60)


def storescu(port, files, aec="FERRY", aet="STORESCU", extra=(), timeout=300):
    return run(["storescu", "-aet", aet, "-aec", aec, "-nh", *extra, "127.0.0.1", str(port),
                *files], timeout=timeout)


def make_instance(path, series_uid=None, study_uid=None, sop_uid=None, modality="CT",
                  rows=16, cols=16, transfer_syntax=ExplicitVRLittleEndian, patient="Doe^John",
                  series_description="Test series", instance_number=1, extra=None):
    """Writes a small valid image instance with pydicom and returns its SOP Instance UID."""
    sop_uid = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Modality = modality
    ds.PatientName = patient
    ds.PatientID = "P001"
    ds.StudyDate = "20261124"
    ds.SeriesDescription = series_description
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    rng = np.random.default_rng(abs(hash(sop_uid)) % (2**32))
    ds.PixelData = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16).tobytes()
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    is_little = transfer_syntax != pydicom.uid.ExplicitVRBigEndian
    is_implicit = transfer_syntax == ImplicitVRLittleEndian
    ds.is_little_endian = is_little
    ds.is_implicit_VR = is_implicit
    ds.save_as(path, write_like_original=False)
    return sop_uid


def dataset_bytes(path):
    """The bytes of a Part-10 file after its file meta information (the dataset as encoded)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[128:132] != b"DICM":
        return data
    pos = 132
    # Group 0002 is always explicit VR little endian.
    while pos + 8 <= len(data):
        group = int.from_bytes(data[pos:pos + 2], "little")
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length = int.from_bytes(data[pos + 8:pos + 12], "little")
            pos += 12 + length
        else:
            length = int.from_bytes(data[pos + 6:pos + 8], "little")
            pos += 8 + length
    return data[pos:]


class Ferry:
    """A ferry process (`serve` or `receiver`) with its own config and data folder."""

    def __init__(self, workdir, mode="receiver", receiver=None, extra=None, port=None):
        self.workdir = workdir
        self.mode = mode
        self.port = port or free_port()
        self.data = os.path.join(workdir, "data")
        self.config_path = os.path.join(workdir, "ferry.json")
        self.log_path = os.path.join(workdir, f"ferry-{mode}.log")
        cfg = {
            "data_folder": self.data,
            "receiver": {"port": self.port, "ae_title": "FERRY", "disk_reserve_mb": 0,
                         "shutdown_grace": 5},
        }
        # The web service of `ferry serve` listens on its own free port, never on 8080.
        cfg["web"] = {"host": "127.0.0.1", "port": free_port()}
        cfg["receiver"].update(receiver or {})
        cfg.update(extra or {})
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.proc = None
        self.log = None

    def start(self, wait=True, log_level="info"):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [FERRY_BIN, self.mode, "--config", self.config_path, "--log-level", log_level],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, 30,
                     what=f"ferry to listen on {self.port}")
            if self.proc.poll() is not None:
                raise AssertionError(f"ferry exited with {self.proc.returncode}:\n{self.log_text()}")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                raise AssertionError(f"ferry did not stop within {timeout} s")
        code = self.proc.returncode
        # Children of `serve` are in the same process group; make sure none survive.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
        self.proc = None
        return code

    def kill(self):
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.log.close()
            self.proc = None

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def incoming(self):
        return os.path.join(self.data, "incoming")

    def series_dirs(self):
        return sorted(d for d in glob.glob(os.path.join(self.incoming(), "*")) if os.path.isdir(d))

    def instances(self, series_uid=None):
        pattern = os.path.join(self.incoming(), series_uid or "*", "*.dcm")
        return sorted(glob.glob(pattern))

    def events(self, service="receiver"):
        out = []
        for path in sorted(glob.glob(os.path.join(self.data, "journal", f"{service}-*.jsonl"))):
            with open(path, "rb") as f:
                for line in f.read().split(b"\n"):
                    if line.strip():
                        with contextlib.suppress(ValueError):
                            out.append(json.loads(line))
        return out

    def tmp_files(self):
        return [p for p in glob.glob(os.path.join(self.data, "tmp", "**", "*"), recursive=True)
                if os.path.isfile(p)]


def store_results(output):
    """Parses `storescu -v` output: [[file, response]] in sending order. `response` is the text
    of "Received Store Response (...)" ("Success", "Error: CannotUnderstand", ...) or None when
    storescu started on the file but got no response (it refused the file, or the association
    broke)."""
    results = []
    current = None
    for line in output.splitlines():
        m = re.match(r"^I: Sending file: (.*)$", line)
        if m:
            current = [m.group(1), None]
            results.append(current)
            continue
        m = re.match(r"^I: Received Store Response \((.*)\)\s*$", line)
        if m and current is not None:
            current[1] = m.group(1)
    return results


def complete_dicom(path):
    """True when `path` is a complete, parseable DICOM file: DCMTK's parser reads it without
    error (it reports premature end of stream, which pydicom tolerates) and pydicom reads every
    element."""
    p = subprocess.run(["dcmdump", "-q", path], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    if p.returncode != 0:
        return False
    try:
        ds = pydicom.dcmread(path)
        for elem in ds.iterall():
            elem.value  # noqa: B018 - forces the conversion of raw elements
    except Exception:  # noqa: BLE001 - any parse failure means "not complete"
        return False
    return True


def wait_events(ferry, kind, count, timeout=10, service="receiver"):
    """Waits until ferry's journal holds at least `count` events of `kind`; returns them.

    Association-end events are written after the release is acknowledged, so they can trail
    the sender's exit by a moment."""
    def enough():
        found = [e for e in ferry.events(service) if e["event"] == kind]
        return found if len(found) >= count else None
    return wait_for(enough, timeout, what=f"{count} {kind} event(s)")


class FerryTestCase(unittest.TestCase):
    """Gives each test a temporary folder and stops every ferry it started."""

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="ferry-e2e-")
        self._ferries = []

    def tearDown(self):
        # Keep the folder of a failed test for inspection.
        result = getattr(getattr(self, "_outcome", None), "result", None)
        failed = any(getattr(t, "test_case", t) is self for t, _ in
                     getattr(result, "errors", []) + getattr(result, "failures", []))
        for f in self._ferries:
            f.kill()
        if not failed:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def ferry(self, **kw):
        f = Ferry(self.workdir if not self._ferries else tempfile.mkdtemp(dir=self.workdir), **kw)
        self._ferries.append(f)
        return f

    def file(self, name):
        return os.path.join(self.workdir, name)

    def make_series(self, count, folder=None, **kw):
        folder = folder or tempfile.mkdtemp(dir=self.workdir, prefix="series-")
        series_uid = kw.pop("series_uid", None) or generate_uid()
        study_uid = kw.pop("study_uid", None) or generate_uid()
        files = []
        for i in range(count):
            path = os.path.join(folder, f"img{i:04d}.dcm")
            make_instance(path, series_uid=series_uid, study_uid=study_uid, instance_number=i + 1,
                          **kw)
            files.append(path)
        return series_uid, files


def add_accounts(config_path, password_file, password, accounts):
    """Creates web accounts with `ferry user add`: `accounts` is [(name, role)], all with
    `password` (written to `password_file`)."""
    with open(password_file, "w") as fh:
        fh.write(password)
    for user, role in accounts:
        run([FERRY_BIN, "user", "add", user, "--role", role, "--password-file", password_file,
             "--config", config_path], check=True)


def child_pids(parent_pid, needle):
    """Live (not zombie) children of `parent_pid` whose command line contains `needle` (bytes or
    str), e.g. the "dispatcher" service of `ferry serve`."""
    if isinstance(needle, str):
        needle = needle.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces or parentheses.
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if int(ppid) == parent_pid and state != "Z" and needle in cmdline:
            found.append(int(entry))
    return found


def journal_time(event):
    """The time of a journal event ("2026-11-24T20:34:26.867138Z") as seconds since the epoch."""
    import calendar
    stamp = event["time"].rstrip("Z")
    whole, _, fraction = stamp.partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + (float("0." + fraction) if fraction else 0.0)

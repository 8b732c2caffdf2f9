"""Bad input: a corpus of odd files, malformed datasets, a full disk, broken transfers and
garbage on the port. Whatever arrives, nothing partial lands in incoming/, staging is cleaned
up, every rejection is answered with a failure status and logged, and the receiver keeps
answering C-ECHO."""
import glob
import os
import random
import re
import signal
import socket
import struct
import subprocess
import time
import unittest
import warnings

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ferrytest import (CT_IMAGE_STORAGE, PYDICOM_TEST_FILES, TOOL_ENV, complete_dicom,
                       dataset_bytes, echoscu, FerryTestCase, make_instance, store_results,
                       storescu, wait_events, wait_for)

ECHO_BOUND_S = 10


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def own_ts_profile(path, folder):
    """storescu options that propose exactly `path`'s SOP class and transfer syntax (a one-context
    association profile), so storescu sends the file as it is without converting it; plain
    `-R` (uncompressed proposals) when pydicom cannot tell either UID."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        ts = str(ds.file_meta.TransferSyntaxUID)
        sop_class = str(ds.SOPClassUID)
    except Exception:  # noqa: BLE001 - not DICOM enough: let storescu decide
        return ["-R"]
    if not re.fullmatch(r"[0-9.]+", ts) or not re.fullmatch(r"[0-9.]+", sop_class):
        return ["-R"]
    cfg = os.path.join(folder, "own-ts.cfg")
    with open(cfg, "w") as f:
        f.write("[[TransferSyntaxes]]\n[OwnTS]\nTransferSyntax1 = %s\n"
                "[[PresentationContexts]]\n[OwnPC]\nPresentationContext1 = %s\\OwnTS\n"
                "[[Profiles]]\n[Own]\nPresentationContexts = OwnPC\n" % (ts, sop_class))
    return ["-xf", cfg, "Own"]


def incoming_snapshot(ferry):
    """{path: (size, mtime_ns, inode)} of every .dcm in incoming/."""
    out = {}
    for p in ferry.instances():
        st = os.stat(p)
        out[p] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def receiver_tmp(ferry):
    folder = os.path.join(ferry.data, "tmp", "receiver")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def timed_echo(port):
    start = time.monotonic()
    p = echoscu(port, extra=["-ta", str(ECHO_BOUND_S), "-to", str(ECHO_BOUND_S)])
    return p, time.monotonic() - start


def _item(kind, data):
    return bytes([kind, 0]) + struct.pack(">H", len(data)) + data


def _pdu(kind, body):
    return bytes([kind, 0]) + struct.pack(">I", len(body)) + body


def _elem(group, element, value):
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, element, len(value)) + value


class RawScu:
    """A minimal DICOM storage SCU on a raw socket: sends exactly the bytes the test wants,
    including datasets DCMTK's tools refuse to send and transfers that break off."""

    def __init__(self, port, calling="RAWSCU", called="FERRY", sop_class=CT_IMAGE_STORAGE,
                 ts=ExplicitVRLittleEndian, timeout=30):
        assert len(calling) <= 16 and len(called) <= 16, "AE titles have at most 16 characters"
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.calling = calling
        self.called = called
        self.sop_class = sop_class
        self.ts = ts
        self.peer_max = 16384
        self.message_id = 0

    def close(self):
        self.sock.close()

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("peer closed the connection")
            buf += chunk
        return buf

    def read_pdu(self):
        head = self._recv_exact(6)
        length = struct.unpack(">I", head[2:6])[0]
        return head[0], self._recv_exact(length)

    def associate(self):
        try:
            self._associate()
        except BaseException:
            self.close()
            raise

    def _associate(self):
        pc = bytes([1, 0, 0, 0]) + _item(0x30, self.sop_class.encode()) + \
            _item(0x40, str(self.ts).encode())
        user = _item(0x51, struct.pack(">I", 16384)) + \
            _item(0x52, b"1.2.826.0.1.3680043.9.7433.1.1")
        body = struct.pack(">HH", 1, 0) + self.called.encode().ljust(16) + \
            self.calling.encode().ljust(16) + bytes(32) + \
            _item(0x10, b"1.2.840.10008.3.1.1.1") + _item(0x20, pc) + _item(0x50, user)
        self.sock.sendall(_pdu(0x01, body))
        kind, data = self.read_pdu()
        if kind != 0x02:
            raise AssertionError(f"association not accepted: PDU type 0x{kind:02x}")
        pos = 68
        accepted = False
        while pos + 4 <= len(data):
            itype, ilen = data[pos], struct.unpack(">H", data[pos + 2:pos + 4])[0]
            value = data[pos + 4:pos + 4 + ilen]
            if itype == 0x21 and value[0] == 1:
                accepted = value[2] == 0
            if itype == 0x50:
                sub = 0
                while sub + 4 <= len(value):
                    stype, slen = value[sub], struct.unpack(">H", value[sub + 2:sub + 4])[0]
                    if stype == 0x51:
                        self.peer_max = struct.unpack(">I", value[sub + 4:sub + 8])[0] or 16384
                    sub += 4 + slen
            pos += 4 + ilen
        if not accepted:
            raise AssertionError("presentation context not accepted")

    def _pdv(self, data, control):
        return _pdu(0x04, struct.pack(">I", len(data) + 2) + bytes([1, control]) + data)

    def send_command(self, sop_instance):
        self.message_id += 1
        cmd = (_elem(0, 0x0002, self.sop_class.encode()) + _elem(0, 0x0100, struct.pack("<H", 1)) +
               _elem(0, 0x0110, struct.pack("<H", self.message_id)) +
               _elem(0, 0x0700, struct.pack("<H", 0)) + _elem(0, 0x0800, struct.pack("<H", 0)) +
               _elem(0, 0x1000, sop_instance.encode()))
        cmd = _elem(0, 0x0000, struct.pack("<I", len(cmd))) + cmd
        self.sock.sendall(self._pdv(cmd, 0x03))

    def send_dataset(self, data, stop_after=None):
        """Sends `data` as P-DATA fragments; with stop_after, only the first that many bytes."""
        size = min(self.peer_max, 16384) - 12
        limit = len(data) if stop_after is None else stop_after
        pos = 0
        while pos < limit:
            chunk = data[pos:min(pos + size, limit)]
            last = pos + len(chunk) >= len(data)
            self.sock.sendall(self._pdv(chunk, 0x02 if last else 0x00))
            pos += len(chunk)

    def read_status(self):
        command = b""
        while True:
            kind, data = self.read_pdu()
            if kind != 0x04:
                raise AssertionError(f"expected P-DATA, got PDU type 0x{kind:02x}")
            pos = 0
            done = False
            while pos + 6 <= len(data):
                length = struct.unpack(">I", data[pos:pos + 4])[0]
                control = data[pos + 5]
                command += data[pos + 6:pos + 4 + length]
                done = done or control == 0x03
                pos += 4 + length
            if done:
                break
        pos = 0
        while pos + 8 <= len(command):
            group, element, length = struct.unpack("<HHI", command[pos:pos + 8])
            if (group, element) == (0, 0x0900):
                return struct.unpack("<H", command[pos + 8:pos + 10])[0]
            pos += 8 + length
        raise AssertionError("C-STORE response without status")

    def store(self, sop_instance, data):
        self.send_command(sop_instance)
        self.send_dataset(data)
        return self.read_status()

    def release(self):
        self.sock.sendall(_pdu(0x05, bytes(4)))
        kind, _ = self.read_pdu()
        self.close()
        return kind == 0x06

    def abort(self):
        self.sock.sendall(_pdu(0x07, bytes(4)))
        self.close()


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

class BadInputTest(FerryTestCase):

    def setUp(self):
        super().setUp()
        # The corpus and the malformed datasets make pydicom warn (invalid UIDs, DICOMDIR
        # class deprecation); expected here. (unittest resets warning filters per run, so
        # this is set per test.)
        warnings.filterwarnings("ignore", module="pydicom")

    def assert_alive(self, f):
        self.assertIsNone(f.proc.poll(), "ferry exited:\n" + f.log_text()[-3000:])
        p, took = timed_echo(f.port)
        self.assertEqual(p.returncode, 0, f"echo failed after {took:.1f} s: {p.stdout}{p.stderr}")
        self.assertLess(took, ECHO_BOUND_S)

    def assert_incoming_complete(self, f):
        for path in f.instances():
            self.assertTrue(complete_dicom(path), f"incomplete or unparseable file {path}")

    def test_pydicom_corpus_one_file_per_association(self):
        if not os.path.isdir(PYDICOM_TEST_FILES):
            self.skipTest("pydicom test files missing (Debian python3-pydicom)")
        corpus = sorted(p for p in glob.glob(os.path.join(PYDICOM_TEST_FILES, "**", "*"),
                                             recursive=True) if os.path.isfile(p))
        self.assertGreater(len(corpus), 50)
        f = self.ferry().start()
        sent_ok, refused_by_ferry, not_sent = [], [], []
        for src in corpus:
            name = os.path.relpath(src, PYDICOM_TEST_FILES)
            before = incoming_snapshot(f)
            p = storescu(f.port, [src], extra=["-v", *own_ts_profile(src, self.workdir)],
                         timeout=120)
            out = p.stdout + p.stderr
            results = store_results(out)
            self.assertLessEqual(len(results), 1, f"{name}: {out}")
            response = results[0][1] if results else None
            # Staging is cleaned before the response is sent; allow a moment only for transfers
            # storescu broke off itself (then ferry notices the closed connection).
            if response is None:
                wait_for(lambda: receiver_tmp(f) == [], 10, what=f"tmp/receiver empty ({name})")
            self.assertEqual(receiver_tmp(f), [], f"{name}: staging left behind")
            after = incoming_snapshot(f)
            if response == "Success":
                ds = pydicom.dcmread(src, stop_before_pixels=True, force=True)
                stored = os.path.join(f.incoming(), ds.SeriesInstanceUID,
                                      ds.SOPInstanceUID + ".dcm")
                self.assertIn(stored, after, f"{name}: acknowledged but not in incoming/")
                self.assertNotEqual(before.get(stored), after[stored],
                                    f"{name}: acknowledged but the stored file did not change")
                self.assertTrue(complete_dicom(stored), f"{name}: stored file incomplete")
                got = pydicom.dcmread(stored, stop_before_pixels=True)
                self.assertEqual(got.SOPInstanceUID, ds.SOPInstanceUID, name)
                if "-xf" in p.args:
                    self.assertEqual(str(got.file_meta.TransferSyntaxUID),
                                     str(ds.file_meta.TransferSyntaxUID), name)
                self.assertEqual(set(after) - set(before), {stored} - set(before), name)
                sent_ok.append(name)
            else:
                if response is not None:
                    # ferry answered with a failure status: it must be a real failure.
                    self.assertNotIn("Success", response, name)
                    self.assertRegex(response, r"^(Error|Refused|Failed)", name)
                    refused_by_ferry.append(name)
                else:
                    not_sent.append(name)
                self.assertEqual(after, before, f"{name}: rejected but incoming/ changed")
        self.assertGreater(len(sent_ok), 40, sent_ok)
        self.assert_incoming_complete(f)
        self.assert_alive(f)
        # One warning per rejection, naming the sender's AE title and address.
        warn_lines = [l for l in f.log_text().splitlines() if "instance rejected" in l]
        self.assertEqual(len(warn_lines), len(refused_by_ferry), "\n".join(warn_lines))
        for line in warn_lines:
            self.assertIn("STORESCU", line)
            self.assertIn("127.0.0.1", line)
            self.assertIn("warn", line)
        rejected = [e for e in f.events() if e["event"] == "instance.rejected"]
        self.assertEqual(len(rejected), len(refused_by_ferry))
        self.assertEqual(f.stop(), 0)
        print(f"\ncorpus: {len(corpus)} files, {len(sent_ok)} stored, {len(refused_by_ferry)} "
              f"rejected by ferry, {len(not_sent)} not sent by storescu")

    def _malformed(self, name, change):
        path = self.file(name)
        make_instance(path)
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path, write_like_original=False)
        return path

    def test_malformed_uids_are_rejected_with_cannot_understand(self):
        f = self.ferry().start()
        good = self.file("good.dcm")
        good_sop = make_instance(good)

        # storescu refuses to send a dataset without SOP Instance UID, so a raw SCU sends it
        # (the C-STORE request names a UID; the dataset has none).
        no_sop = self._malformed("no-sop.dcm", lambda ds: delattr(ds, "SOPInstanceUID"))
        scu = RawScu(f.port)
        scu.associate()
        status = scu.store(generate_uid(), dataset_bytes(no_sop))
        self.assertEqual(status, 0xC000, hex(status))
        # The association stays usable after a rejection.
        self.assertEqual(scu.store(good_sop, dataset_bytes(good)), 0x0000)
        self.assertTrue(scu.release())

        def path_chars(ds):
            ds.SOPInstanceUID = "1.2/../../x"
        bad_sop = self._malformed("bad-sop.dcm", path_chars)
        no_series = self._malformed("no-series.dcm", lambda ds: delattr(ds, "SeriesInstanceUID"))
        for path in (bad_sop, no_series):
            p = storescu(f.port, [path], extra=["-v"])
            out = p.stdout + p.stderr
            results = store_results(out)
            self.assertEqual(len(results), 1, out)
            self.assertIsNotNone(results[0][1], out)
            self.assertNotIn("Success", results[0][1], out)
            self.assertRegex(out, r"(?i)0xc000|Cannot ?Understand", out)

        # Only the good instance is stored; no path escaped the spool.
        stored = f.instances()
        self.assertEqual([os.path.basename(s) for s in stored], [good_sop + ".dcm"])
        everything = [p for p in glob.glob(os.path.join(self.workdir, "**"), recursive=True)]
        self.assertFalse([p for p in everything if os.path.basename(p) in ("x", "x.dcm")],
                         "a file named after the malicious UID exists")
        self.assertEqual(receiver_tmp(f), [])
        rejected = [e["details"] for e in f.events() if e["event"] == "instance.rejected"]
        self.assertEqual(len(rejected), 3, rejected)
        for d in rejected:
            self.assertEqual(d["status"], "0xC000")
            self.assertTrue(d["reason"])
        reasons = " | ".join(d["reason"] for d in rejected)
        self.assertIn("SOP Instance UID", reasons)
        self.assertIn("Series Instance UID", reasons)
        self.assertIn("1.2/../../x", reasons)
        self.assertEqual({d["calling_ae"] for d in rejected}, {"RAWSCU", "STORESCU"})
        warn_lines = [l for l in f.log_text().splitlines() if "instance rejected" in l]
        self.assertEqual(len(warn_lines), 3)
        for line in warn_lines:
            self.assertIn("127.0.0.1", line)
            self.assertTrue("STORESCU" in line or "RAWSCU" in line, line)
        self.assert_alive(f)

    def test_disk_reserve_answers_out_of_resources(self):
        f = self.ferry(receiver={"disk_reserve_mb": 1 << 30}).start()
        _, files = self.make_series(3)
        p = storescu(f.port, files, extra=["-v"])
        out = p.stdout + p.stderr
        results = store_results(out)
        self.assertEqual(len(results), 3, out)
        for src, response in results:
            self.assertIsNotNone(response, out)
            self.assertRegex(response, r"OutOfResources|Out of Resources", out)
        self.assertEqual(f.instances(), [])
        self.assertEqual(f.series_dirs(), [])
        self.assertEqual(receiver_tmp(f), [])
        wait_events(f, "association.closed", 1)
        closed = [e["details"] for e in f.events() if e["event"] == "association.closed"]
        self.assertEqual(len(closed), 1)
        self.assertEqual(closed[0]["instances"], 0)
        self.assertEqual(closed[0]["failed"], 3)
        # -d shows the raw status code.
        p = storescu(f.port, files[:1], extra=["-d"])
        self.assertRegex(p.stdout + p.stderr, r"(?i)0xa700")
        self.assert_alive(f)

    def _large_files(self, count, mb=20):
        side = int((mb * 1024 * 1024 / 2) ** 0.5)
        _, files = self.make_series(count, rows=side, cols=side)
        return files

    def test_raw_transfer_broken_mid_dataset(self):
        f = self.ferry().start()
        src = self._large_files(1)[0]
        data = dataset_bytes(src)
        sop = pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID
        modes = {"close": "BROKENCLOSE", "abort": "BROKENABORT", "truncated-pdu": "BROKENTRUNC"}
        for how, calling in modes.items():
            scu = RawScu(f.port, calling=calling)
            scu.associate()
            scu.send_command(sop)
            scu.send_dataset(data, stop_after=len(data) // 2)
            # The staging file is being written...
            wait_for(lambda: receiver_tmp(f), 10, what="a staging file")
            if how == "abort":
                scu.abort()
            else:
                if how == "truncated-pdu":
                    # A P-DATA PDU that announces 16 KB and ends after 100 bytes.
                    scu.sock.sendall(bytes([0x04, 0]) + struct.pack(">I", 16384) +
                                     struct.pack(">I", 16380) + bytes([1, 0]) + bytes(94))
                scu.sock.shutdown(socket.SHUT_RDWR)
                scu.close()
            wait_for(lambda: receiver_tmp(f) == [], 10, what="tmp/receiver to be emptied")
            wait_for(lambda: [e for e in f.events() if e["event"] == "association.closed"
                              and e["details"]["calling_ae"] == calling], 10,
                     what="association.closed")
        self.assertEqual(f.instances(), [])
        self.assertEqual(f.series_dirs(), [])
        closed = [e["details"] for e in f.events() if e["event"] == "association.closed"]
        self.assertEqual(len(closed), len(modes))
        for d in closed:
            self.assertIn(d["result"], ("aborted", "error"), d)
            self.assertEqual(d["instances"], 0)
        rejected = [e["details"] for e in f.events() if e["event"] == "instance.rejected"]
        self.assertEqual(len(rejected), len(modes), rejected)
        for d in rejected:
            self.assertIn("incomplete", d["reason"])
        self.assert_alive(f)
        # The same instance sent completely afterwards is stored byte-exact.
        p = storescu(f.port, [src])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(f.instances()), 1)
        self.assertEqual(dataset_bytes(f.instances()[0]), data)

    def test_storescu_killed_mid_transfer(self):
        f = self.ferry().start()
        files = self._large_files(4)
        sources = {dataset_bytes(s) for s in files}
        proc = subprocess.Popen(["storescu", "-aec", "FERRY", "-nh", "-xe", "127.0.0.1",
                                 str(f.port), *files], env=TOOL_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            tmp = os.path.join(f.data, "tmp", "receiver")

            def staging_in_progress():
                # kill while the second instance is arriving: one stored, one half written.
                if len(f.instances()) < 1:
                    return False
                for name in os.listdir(tmp):
                    try:
                        size = os.path.getsize(os.path.join(tmp, name))
                        if 2 * 1024 * 1024 < size < 10 * 1024 * 1024:
                            return True
                    except FileNotFoundError:
                        pass
                return False
            wait_for(staging_in_progress, 60, interval=0.002,
                     what="the second instance half received")
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        wait_for(lambda: receiver_tmp(f) == [], 10, what="tmp/receiver to be emptied")
        wait_for(lambda: [e for e in f.events() if e["event"] == "association.closed"], 10,
                 what="association.closed")
        stored = f.instances()
        self.assertGreaterEqual(len(stored), 1)
        self.assertLess(len(stored), len(files), "the kill came too late to test anything")
        for path in stored:
            self.assertTrue(complete_dicom(path), path)
            self.assertIn(dataset_bytes(path), sources, f"{path} is not one of the sent datasets")
        closed = [e["details"] for e in f.events() if e["event"] == "association.closed"]
        self.assertEqual(len(closed), 1)
        self.assertIn(closed[0]["result"], ("aborted", "error"), closed[0])
        self.assertEqual(closed[0]["instances"], len(stored))
        rejected = [e["details"] for e in f.events() if e["event"] == "instance.rejected"]
        self.assertEqual(len(rejected), 1, rejected)
        self.assertIn("incomplete", rejected[0]["reason"])
        # The association marker says it ended.
        markers = glob.glob(os.path.join(f.incoming(), "*", "associations", "*"))
        self.assertEqual(len(markers), 1)
        self.assertTrue(markers[0].endswith(".ended"), markers)
        self.assert_alive(f)

    def test_garbage_on_the_port(self):
        f = self.ferry().start()
        rng = random.Random(20261124)
        pdu_head = _pdu(0x01, bytes(200))[:6]
        payloads = {
            "random bytes": bytes(rng.getrandbits(8) for _ in range(4096)),
            "http request": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "truncated A-ASSOCIATE-RQ": pdu_head + bytes(20),
            "huge PDU length": bytes([0x01, 0]) + struct.pack(">I", 0xFFFFFFF0) + bytes(64),
            "unknown PDU type": _pdu(0x99, bytes(64)),
            "P-DATA before association": _pdu(0x04, bytes(32)),
            "empty connection": b"",
        }
        for name, payload in payloads.items():
            with socket.create_connection(("127.0.0.1", f.port), timeout=10) as s:
                # ferry may drop the connection as soon as it sees the first bad bytes.
                try:
                    if payload:
                        s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)
                    # Read what ferry answers (A-ABORT, A-ASSOCIATE-RJ or nothing) until it
                    # closes the connection.
                    s.settimeout(ECHO_BOUND_S)
                    while s.recv(65536):
                        pass
                except (socket.timeout, OSError):
                    pass
            with self.subTest(payload=name):
                self.assert_alive(f)

        # Garbage inside an accepted association: a P-DATA PDU whose PDV length runs past the
        # PDU, then an unknown PDU type.
        for name, pdu in (("bad PDV length", _pdu(0x04, struct.pack(">I", 5000) + bytes([1, 3]))),
                          ("unknown PDU in association", _pdu(0x42, bytes(16)))):
            scu = RawScu(f.port, calling="GARBAGE")
            scu.associate()
            scu.sock.settimeout(ECHO_BOUND_S)
            scu.sock.sendall(pdu)
            # ferry answers a protocol error with an A-ABORT.
            with self.subTest(payload=name):
                kind, _ = scu.read_pdu()
                self.assertEqual(kind, 0x07, f"expected A-ABORT, got PDU type 0x{kind:02x}")
            scu.close()
            with self.subTest(payload=name):
                self.assert_alive(f)
        def garbage_closed():
            found = [e["details"] for e in f.events() if e["event"] == "association.closed"
                     and e["details"]["calling_ae"] == "GARBAGE"]
            return found if len(found) >= 2 else None
        closed = wait_for(garbage_closed, 10, what="the garbage associations to be closed")
        self.assertEqual(len(closed), 2)
        for d in closed:
            self.assertEqual(d["result"], "error", d)
        self.assertEqual(f.instances(), [])
        wait_for(lambda: receiver_tmp(f) == [], 10, what="tmp/receiver to be emptied")
        # Still stores after all that.
        _, files = self.make_series(2)
        p = storescu(f.port, files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(f.instances()), 2)
        self.assertEqual(f.stop(), 0)

    def test_stalled_connection_does_not_block_others(self):
        # A peer that connects and sends nothing, or half an A-ASSOCIATE-RQ, and then stays
        # silent (a port scanner, a hung client, a slow-loris) must not keep everyone else out:
        # other senders are served meanwhile.
        f = self.ferry().start()
        for name, payload in (("silent", b""), ("half a PDU", _pdu(0x01, bytes(200))[:26])):
            with self.subTest(peer=name):
                s = socket.create_connection(("127.0.0.1", f.port), timeout=10)
                try:
                    if payload:
                        s.sendall(payload)
                    time.sleep(0.5)
                    p, took = timed_echo(f.port)
                    self.assertEqual(p.returncode, 0,
                                     f"echo failed after {took:.1f} s while a {name} peer was "
                                     f"connected: {p.stdout}{p.stderr}")
                    self.assertLess(took, ECHO_BOUND_S)
                finally:
                    s.close()


if __name__ == "__main__":
    unittest.main()

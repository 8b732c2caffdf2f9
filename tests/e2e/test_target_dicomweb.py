"""dicomweb target: STOW-RS to Orthanc with its DICOMweb plugin, through `ferry targets test`
and `ferry targets send`, checked through Orthanc's REST API."""
import json
import re
import socket
import threading
import unittest

import pydicom

from ferrytest import FERRY_BIN, FerryTestCase, free_port, run
from peers_orthanc import OrthancPeer, orthanc_available


@unittest.skipUnless(orthanc_available(), "Orthanc with the DICOMweb plugin is not installed")
class DicomwebTargetTest(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.stop()
        super().tearDown()

    def orthanc(self, **kw):
        o = OrthancPeer(self.workdir, **kw)
        self.peers.append(o)
        return o.start()

    def config(self, **targets):
        path = self.file("ferry.json")
        entries = {name: dict({"target_type": "dicomweb"}, **t) for name, t in targets.items()}
        with open(path, "w") as f:
            json.dump({"data_folder": self.file("data"), "targets": entries}, f, indent=2)
        return path

    def targets(self, *args, timeout=120):
        return run([FERRY_BIN, "targets", *args], timeout=timeout)

    def outcomes(self, p, files):
        """{file: outcome line} from `ferry targets send` output."""
        lines = {}
        for line in p.stdout.splitlines():
            for f in files:
                if line.startswith(f + ": "):
                    lines[f] = line[len(f) + 2:]
        self.assertEqual(sorted(lines), sorted(files), p.stdout + p.stderr)
        return lines

    def test_series_arrives_byte_exact(self):
        orthanc = self.orthanc()
        _, files = self.make_series(6)
        cfg = self.config(pacs={"url": orthanc.dicomweb_url})
        p = self.targets("test", "--config", cfg, "pacs")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"^PASS pacs \(dicomweb http://127\.0\.0\.1:\d+/dicom-web\)")
        self.assertEqual(orthanc.instances(), [], "targets test must not store anything")

        p = self.targets("send", "--config", cfg, "pacs", *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(all(o == "delivered" for o in self.outcomes(p, files).values()), p.stdout)
        self.assertIn("PASS pacs: 6 of 6 delivered", p.stdout)

        stored = orthanc.file_by_sop_instance_uid()
        expected = {}
        for f in files:
            expected[pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID] = f
        self.assertEqual(sorted(stored), sorted(expected))
        for uid, f in expected.items():
            with open(f, "rb") as fh:
                self.assertEqual(stored[uid], fh.read(), f"{f} changed on the way")

    def test_batches_of_batch_size(self):
        orthanc = self.orthanc()
        _, files = self.make_series(7)
        cfg = self.config(pacs={"url": orthanc.dicomweb_url + "/", "batch_size": 3})
        p = self.targets("send", "--config", cfg, "--log-level", "debug", "pacs", *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        requests = re.findall(r"STOW-RS of (\d+) instances .*: HTTP 200 in \d+ ms(.*)$", p.stderr,
                              re.MULTILINE)
        self.assertEqual([int(n) for n, _ in requests], [3, 3, 1], p.stderr)
        # One connection for the session: only the first request opens it.
        self.assertEqual([new for _, new in requests], [" (new connection)", "", ""], p.stderr)
        self.assertEqual(len(orthanc.instances()), 7)

    def test_stow_url_prefix(self):
        orthanc = self.orthanc()
        _, files = self.make_series(2)
        cfg = self.config(pacs={"url": orthanc.url, "stow_url_prefix": "/dicom-web"})
        self.assertEqual(self.targets("test", "--config", cfg, "pacs").returncode, 0)
        p = self.targets("send", "--config", cfg, "pacs", *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(orthanc.instances()), 2)

    def test_basic_auth(self):
        orthanc = self.orthanc(users={"ferry": "s3cret"})
        _, files = self.make_series(3)
        cfg = self.config(
            good={"url": orthanc.dicomweb_url, "http_user": "ferry", "http_password": "s3cret"},
            wrong={"url": orthanc.dicomweb_url, "http_user": "ferry", "http_password": "guess"},
            anonymous={"url": orthanc.dicomweb_url})

        for name in ("wrong", "anonymous"):
            p = self.targets("test", "--config", cfg, name)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertRegex(p.stdout, rf"^FAIL {name} .*HTTP 401.*authentication failed — check "
                                       r"access_token/http_user")
        p = self.targets("send", "--config", cfg, "wrong", *files)
        self.assertEqual(p.returncode, 1, p.stdout)
        for outcome in self.outcomes(p, files).values():
            self.assertRegex(outcome, r"^permanent failure: .*HTTP 401.*authentication failed")
        self.assertIn("FAIL wrong: 0 of 3 delivered", p.stdout)
        self.assertEqual(orthanc.instances(), [])

        p = self.targets("test", "--config", cfg, "good")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = self.targets("send", "--config", cfg, "good", *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(orthanc.instances()), 3)

    def test_server_down_is_transient(self):
        _, files = self.make_series(2)
        cfg = self.config(pacs={"url": f"http://127.0.0.1:{free_port()}/dicom-web", "timeout": 5})
        p = self.targets("test", "--config", cfg, "pacs", timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, r"^FAIL pacs .*cannot reach the DICOMweb server.*"
                                   r"(Couldn't connect|Failed to connect|refused)")
        p = self.targets("send", "--config", cfg, "pacs", *files, timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout)
        for outcome in self.outcomes(p, files).values():
            self.assertTrue(outcome.startswith("transient failure: "), outcome)

    def test_silent_server_times_out_as_transient(self):
        # Accepts connections and never answers.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        accepted = []

        def accept():
            while True:
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    return
        threading.Thread(target=accept, daemon=True).start()
        try:
            _, files = self.make_series(1)
            port = listener.getsockname()[1]
            cfg = self.config(pacs={"url": f"http://127.0.0.1:{port}/dicom-web", "timeout": 1})
            p = self.targets("send", "--config", cfg, "pacs", *files, timeout=60)
            self.assertEqual(p.returncode, 1, p.stdout)
            outcome = self.outcomes(p, files)[files[0]]
            self.assertRegex(outcome, r"^transient failure: .*timeout")
        finally:
            listener.close()
            for s in accepted:
                s.close()


if __name__ == "__main__":
    unittest.main()

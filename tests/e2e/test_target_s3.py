"""s3 target: signed PUTs to s3rver, through `ferry targets test` and `ferry targets send`,
checked by listing and reading the bucket."""
import json
import re
import unittest

import pydicom

from ferrytest import FERRY_BIN, FerryTestCase, free_port, run
from peers_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3rverPeer, s3rver_available


@unittest.skipUnless(s3rver_available(), "s3rver is not installed; run scripts/install-deps.sh")
class S3TargetTest(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.stop()
        super().tearDown()

    def s3rver(self, buckets=("archive",), **kw):
        s = S3rverPeer(self.workdir, buckets=buckets, **kw)
        self.peers.append(s)
        return s.start()

    def config(self, **targets):
        path = self.file("ferry.json")
        entries = {}
        for name, t in targets.items():
            entries[name] = dict({"target_type": "s3", "region": "us-east-1",
                                  "access_key_id": ACCESS_KEY_ID,
                                  "secret_access_key": SECRET_ACCESS_KEY}, **t)
        with open(path, "w") as f:
            json.dump({"data_folder": self.file("data"), "targets": entries}, f, indent=2)
        return path

    def targets(self, *args, timeout=120):
        return run([FERRY_BIN, "targets", *args], timeout=timeout)

    def outcomes(self, p, files):
        lines = {}
        for line in p.stdout.splitlines():
            for f in files:
                if line.startswith(f + ": "):
                    lines[f] = line[len(f) + 2:]
        self.assertEqual(sorted(lines), sorted(files), p.stdout + p.stderr)
        return lines

    @staticmethod
    def expected_key(prefix, path):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return f"{prefix}{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"

    def test_objects_at_their_keys_with_exact_bytes(self):
        s3 = self.s3rver()
        _, files = self.make_series(4)
        cfg = self.config(archive={"bucket": "archive", "prefix": "ferry/ct/",
                                   "endpoint_url": s3.endpoint_url})
        p = self.targets("test", "--config", cfg, "archive")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(f"PASS archive (s3 bucket archive ({s3.endpoint_url}))", p.stdout)
        self.assertEqual(s3.keys("archive"), [], "targets test must not store anything")

        p = self.targets("send", "--config", cfg, "--log-level", "debug", "archive", *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(all(o == "delivered" for o in self.outcomes(p, files).values()), p.stdout)
        self.assertIn("PASS archive: 4 of 4 delivered", p.stdout)
        # One connection for the session: only the first PUT opens it.
        puts = re.findall(r"PUT s3://archive/\S+ \(\d+ bytes\): HTTP 200 in \d+ ms(.*)$",
                          p.stderr, re.MULTILINE)
        self.assertEqual(puts, [" (new connection)", "", "", ""], p.stderr)

        expected = {self.expected_key("ferry/ct/", f): f for f in files}
        self.assertEqual(s3.keys("archive"), sorted(expected))
        for key, f in expected.items():
            with open(f, "rb") as fh:
                self.assertEqual(s3.get("archive", key), fh.read(), key)
        self.assertEqual(s3.head("archive", next(iter(expected)))["Content-Type"],
                         "application/dicom")

    def test_empty_or_slashed_prefix_gives_clean_keys(self):
        s3 = self.s3rver()
        _, files = self.make_series(1)
        cfg = self.config(bare={"bucket": "archive", "endpoint_url": s3.endpoint_url + "/"},
                          slashed={"bucket": "archive", "prefix": "/in/",
                                   "endpoint_url": s3.endpoint_url})
        for name in ("bare", "slashed"):
            p = self.targets("send", "--config", cfg, name, *files)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(s3.keys("archive"),
                         sorted([self.expected_key("", files[0]),
                                 self.expected_key("in/", files[0])]))

    def test_missing_bucket_is_permanent(self):
        s3 = self.s3rver()
        _, files = self.make_series(2)
        cfg = self.config(gone={"bucket": "no-such-bucket", "endpoint_url": s3.endpoint_url})
        p = self.targets("test", "--config", cfg, "gone")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, r"^FAIL gone .*HTTP 404.*NoSuchBucket.*the bucket "
                                   r"\"no-such-bucket\" does not exist")
        p = self.targets("send", "--config", cfg, "gone", *files)
        self.assertEqual(p.returncode, 1, p.stdout)
        for outcome in self.outcomes(p, files).values():
            self.assertRegex(outcome, r"^permanent failure: .*does not exist")

    def test_unknown_access_key_is_permanent(self):
        s3 = self.s3rver()
        _, files = self.make_series(1)
        cfg = self.config(wrong={"bucket": "archive", "endpoint_url": s3.endpoint_url,
                                 "access_key_id": "NOTAKEY"})
        p = self.targets("test", "--config", cfg, "wrong")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, r"HTTP 403.*InvalidAccessKeyId.*check access_key_id")
        p = self.targets("send", "--config", cfg, "wrong", *files)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(self.outcomes(p, files)[files[0]],
                         r"^permanent failure: .*refused the credentials")
        self.assertEqual(s3.keys("archive"), [])

    def test_server_down_is_transient(self):
        _, files = self.make_series(2)
        cfg = self.config(down={"bucket": "archive", "timeout": 5,
                                "endpoint_url": f"http://127.0.0.1:{free_port()}"})
        p = self.targets("test", "--config", cfg, "down", timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, r"^FAIL down .*cannot reach the S3 server.*"
                                   r"(Couldn't connect|Failed to connect|refused)")
        p = self.targets("send", "--config", cfg, "down", *files, timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout)
        for outcome in self.outcomes(p, files).values():
            self.assertTrue(outcome.startswith("transient failure: "), outcome)

    def test_tls_is_verified(self):
        key, cert = self.file("server.key"), self.file("server.crt")
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
             cert, "-days", "2", "-subj", "/CN=ferry e2e s3", "-addext",
             "subjectAltName=IP:127.0.0.1"], check=True, timeout=60)
        s3 = self.s3rver(key_file=key, cert_file=cert)
        _, files = self.make_series(1)
        base = {"bucket": "archive", "endpoint_url": s3.endpoint_url}
        cfg = self.config(untrusted=base, trusted=dict(base, ca_cert=cert),
                          unchecked=dict(base, verify_tls=False))
        p = self.targets("test", "--config", cfg, "untrusted")
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stdout, r"not trusted: set the target's ca_cert")
        p = self.targets("send", "--config", cfg, "untrusted", *files)
        self.assertRegex(self.outcomes(p, files)[files[0]], r"^permanent failure: .*not trusted")
        for name in ("trusted", "unchecked"):
            p = self.targets("test", "--config", cfg, name)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = self.targets("send", "--config", cfg, "trusted", *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(s3.keys("archive"), [self.expected_key("", files[0])])


if __name__ == "__main__":
    unittest.main()

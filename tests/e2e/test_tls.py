"""DICOM TLS: ferry with a server certificate and a CA that signs the senders' certificates.
Certificates are made with the openssl CLI for each test class run."""
import os
import shutil
import tempfile
import unittest

import pydicom

from ferrytest import (dataset_bytes, echoscu, FerryTestCase, run, storescu, wait_events,
                       wait_for)

TLS_TIMEOUTS = ["-to", "10", "-ta", "10"]


def openssl(*args, cwd):
    run(["openssl", *args], cwd=cwd, check=True, timeout=60)


def make_ca(folder, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=ferry e2e {name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)


def make_cert(folder, name, ca, usage, names="IP:127.0.0.1,DNS:localhost"):
    ext = os.path.join(folder, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage={usage}\nsubjectAltName={names}\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN=ferry e2e {name}", cwd=folder)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext, cwd=folder)


class TlsTest(FerryTestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="ferry-e2e-pki-")
        try:
            make_ca(cls.pki, "ca")
            make_ca(cls.pki, "rogue-ca")
            make_cert(cls.pki, "server", "ca", "serverAuth")
            make_cert(cls.pki, "client", "ca", "clientAuth")
            make_cert(cls.pki, "rogue-client", "rogue-ca", "clientAuth")
        except BaseException:
            shutil.rmtree(cls.pki, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)

    def pem(self, name):
        return os.path.join(self.pki, name)

    def tls_ferry(self, require_peer_certificate=True):
        tls = {"enabled": True, "key": self.pem("server.key"),
               "certificate": self.pem("server.crt"), "ca": self.pem("ca.crt"),
               "require_peer_certificate": require_peer_certificate}
        return self.ferry(receiver={"tls": tls}).start()

    def client_tls(self, name="client"):
        return ["+tls", self.pem(f"{name}.key"), self.pem(f"{name}.crt"),
                "+cf", self.pem("ca.crt"), *TLS_TIMEOUTS]

    def assert_stored_exactly(self, f, files):
        self.assertEqual(len(f.instances()), len(files))
        for src in files:
            ds = pydicom.dcmread(src, stop_before_pixels=True)
            stored = os.path.join(f.incoming(), ds.SeriesInstanceUID, ds.SOPInstanceUID + ".dcm")
            self.assertTrue(os.path.exists(stored), stored)
            self.assertEqual(dataset_bytes(stored), dataset_bytes(src))

    def test_mutual_tls_store_and_echo(self):
        f = self.tls_ferry()
        # The port opens before the TLS settings are loaded and the start is logged.
        wait_for(lambda: "TLS on" in f.log_text(), 10, what="the receiver's start line")
        _, files = self.make_series(3)
        p = storescu(f.port, files, extra=self.client_tls(), timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assert_stored_exactly(f, files)
        p = echoscu(f.port, extra=self.client_tls())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        started = [e for e in f.events() if e["event"] == "service.started"]
        self.assertTrue(started and started[0]["details"]["tls"])
        closed = [e["details"] for e in wait_events(f, "association.closed", 2)]
        self.assertEqual([d["result"] for d in closed], ["released", "released"])
        self.assertEqual(closed[0]["instances"], 3)
        self.assertEqual(f.stop(), 0)

    def test_senders_without_a_valid_certificate_are_refused(self):
        f = self.tls_ferry()
        _, files = self.make_series(2)
        attempts = {
            "plain TCP": ["-to", "10", "-ta", "10"],
            "anonymous TLS": ["+tla", "+cf", self.pem("ca.crt"), *TLS_TIMEOUTS],
            "certificate from another CA": self.client_tls("rogue-client"),
        }
        for name, extra in attempts.items():
            with self.subTest(sender=name):
                p = storescu(f.port, files, extra=extra, timeout=60)
                self.assertNotEqual(p.returncode, 0, f"{name}: {p.stdout}{p.stderr}")
                p = echoscu(f.port, extra=extra)
                self.assertNotEqual(p.returncode, 0, f"{name}: {p.stdout}{p.stderr}")
                self.assertEqual(f.instances(), [])
        self.assertIsNone(f.proc.poll(), f.log_text())
        self.assertFalse([e for e in f.events() if e["event"] == "association.opened"])
        # Each refused handshake is logged (3 senders, storescu and echoscu each).
        refused = [l for l in f.log_text().splitlines()
                   if "failed before negotiation" in l and "TLS" in l]
        self.assertGreaterEqual(len(refused), 6, "\n".join(refused))
        # The receiver still serves a good client afterwards.
        p = storescu(f.port, files, extra=self.client_tls(), timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assert_stored_exactly(f, files)
        self.assertEqual(f.stop(), 0)

    def test_client_verifies_ferry_certificate(self):
        # A sender that trusts only another CA refuses ferry's certificate.
        f = self.tls_ferry()
        extra = ["+tls", self.pem("client.key"), self.pem("client.crt"),
                 "+cf", self.pem("rogue-ca.crt"), *TLS_TIMEOUTS]
        p = echoscu(f.port, extra=extra)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        p = echoscu(f.port, extra=self.client_tls())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_peer_certificate_optional(self):
        f = self.tls_ferry(require_peer_certificate=False)
        _, files = self.make_series(2)
        p = storescu(f.port, files, extra=["+tla", "+cf", self.pem("ca.crt"), *TLS_TIMEOUTS],
                     timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assert_stored_exactly(f, files)
        p = echoscu(f.port, extra=["+tla", "+cf", self.pem("ca.crt"), *TLS_TIMEOUTS])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # With a certificate it works too; plain TCP still does not.
        p = echoscu(f.port, extra=self.client_tls())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = echoscu(f.port, extra=["-to", "10", "-ta", "10"])
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(f.stop(), 0)


if __name__ == "__main__":
    unittest.main()

"""The `dicom` target: C-STORE to real DCMTK storescp destinations (and to ferry's own
receiver), through `ferry targets test|send` and, for the AE title options, `ferry serve`."""
import json
import os
import re
import shutil
import tempfile
import unittest

import pydicom
from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLosslessSV1,
                         JPEGLSLossless, RLELossless)

from ferrytest import (FERRY_BIN, PYDICOM_TEST_FILES, FerryTestCase, dataset_bytes, free_port,
                       run, storescu, wait_for)
from peers_dicom import StoreScp, association_profile
from test_tls import make_ca, make_cert

SEND_TIMEOUT = 120


def outcomes(stdout):
    """{file: "delivered" | "transient failure" | "permanent failure"} from `targets send`."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^(.*?): (delivered|transient failure|permanent failure)(?:: (.*))?$", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3) or "")
    return out


class DicomTargetTest(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.count = 0

    def next_name(self, prefix):
        self.count += 1
        return f"{prefix}-{self.count}"

    def storescp(self, **kw):
        scp = StoreScp(self.workdir, name=self.next_name("storescp"), **kw)
        self.addCleanup(scp.stop)
        return scp.start()

    def config(self, **targets):
        path = os.path.join(self.workdir, self.next_name("ferry") + ".json")
        with open(path, "w") as f:
            json.dump({"data_folder": os.path.join(self.workdir, "data"), "targets": targets}, f,
                      indent=2)
        return path

    @staticmethod
    def dicom(port, aet="DEST", **kw):
        return {"target_type": "dicom", "ip": "127.0.0.1", "port": port, "aet_target": aet,
                "timeout": 20, **kw}

    def targets(self, verb, config, name, *files):
        return run([FERRY_BIN, "targets", verb, "--config", config, name, *files],
                   timeout=SEND_TIMEOUT)

    def send(self, target, files, expect_ok=True):
        """Sends `files` to `target` (a target dict) with `ferry targets send`; returns
        ({file: (outcome, detail)}, process)."""
        p = self.targets("send", self.config(dest=target), "dest", *files)
        text = p.stdout + p.stderr
        self.assertEqual(p.returncode == 0, expect_ok, text)
        got = outcomes(p.stdout)
        self.assertEqual(sorted(got), sorted(files), text)
        return got, p

    def received(self, scp):
        """{SOP Instance UID: path} of what storescp stored."""
        return {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p
                for p in scp.files()}

    @staticmethod
    def uid(path):
        return pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID

    def compress(self, files, tool, *args):
        """Copies of `files` encoded with a DCMTK tool (dcmcjpeg, dcmcjpls, dcmcrle)."""
        folder = tempfile.mkdtemp(dir=self.workdir, prefix=f"{tool}-")
        out = []
        for src in files:
            dst = os.path.join(folder, os.path.basename(src))
            run([tool, *args, src, dst], check=True, timeout=60)
            out.append(dst)
        return out

    # -- delivery ---------------------------------------------------------------------------

    def test_series_arrives_bit_exact_over_one_association(self):
        scp = self.storescp(extra_args=["+B"])  # bit-preserving: files hold the bytes received
        _, files = self.make_series(5)
        got, p = self.send(self.dicom(scp.port), files)
        self.assertTrue(all(o == ("delivered", "") for o in got.values()), p.stdout)
        self.assertIn("PASS dest: 5 of 5 delivered", p.stdout)
        stored = self.received(scp)
        self.assertEqual(len(stored), 5)
        for src in files:
            self.assertEqual(dataset_bytes(stored[self.uid(src)]), dataset_bytes(src), src)
            self.assertEqual(pydicom.dcmread(stored[self.uid(src)]), pydicom.dcmread(src))
        self.assertEqual(scp.log_text().count("Association Received"), 1, scp.log_text())
        self.assertEqual(scp.log_text().count("Association Release"), 1, scp.log_text())

    def test_implicit_vr_and_mixed_sop_classes_in_one_batch(self):
        scp = self.storescp(extra_args=["+B"])
        _, ct = self.make_series(2, modality="CT")
        _, mr = self.make_series(2, modality="MR", transfer_syntax=ImplicitVRLittleEndian)
        files = [ct[0], mr[0], ct[1], mr[1]]
        got, p = self.send(self.dicom(scp.port), files)
        self.assertTrue(all(o[0] == "delivered" for o in got.values()), p.stdout)
        stored = self.received(scp)
        for src in files:
            self.assertEqual(dataset_bytes(stored[self.uid(src)]), dataset_bytes(src), src)
            self.assertEqual(pydicom.dcmread(stored[self.uid(src)]).file_meta.TransferSyntaxUID,
                             pydicom.dcmread(src).file_meta.TransferSyntaxUID)
        self.assertEqual(scp.log_text().count("Association Received"), 1, scp.log_text())

    def test_jpeg_lossless_is_sent_unchanged_to_a_peer_that_accepts_it(self):
        scp = self.storescp(extra_args=["+xs", "+B"])  # +xs: accept JPEG lossless SV1
        _, raw = self.make_series(2)
        files = self.compress(raw, "dcmcjpeg")
        got, p = self.send(self.dicom(scp.port), files)
        self.assertTrue(all(o == ("delivered", "") for o in got.values()), p.stdout)
        stored = self.received(scp)
        for src in files:
            ds = pydicom.dcmread(stored[self.uid(src)])
            self.assertEqual(ds.file_meta.TransferSyntaxUID, JPEGLosslessSV1)
            self.assertEqual(ds.PixelData, pydicom.dcmread(src).PixelData)
            self.assertEqual(dataset_bytes(stored[self.uid(src)]), dataset_bytes(src))

    def test_compressed_instances_are_decoded_for_an_uncompressed_only_peer(self):
        scp = self.storescp()  # storescp's default: uncompressed transfer syntaxes only
        _, raw = self.make_series(3)
        original = {self.uid(f): pydicom.dcmread(f) for f in raw}
        encodings = {
            "JPEG lossless": (self.compress(raw[:1], "dcmcjpeg"), JPEGLosslessSV1),
            "JPEG-LS lossless": (self.compress(raw[1:2], "dcmcjpls"), JPEGLSLossless),
            "RLE": (self.compress(raw[2:], "dcmcrle"), RLELossless),
        }
        files = [f for fs, _ in encodings.values() for f in fs]
        for name, (fs, ts) in encodings.items():
            self.assertEqual(pydicom.dcmread(fs[0]).file_meta.TransferSyntaxUID, ts, name)
        got, p = self.send(self.dicom(scp.port), files)
        stored = self.received(scp)
        for name, (fs, ts) in encodings.items():
            with self.subTest(encoding=name):
                outcome, detail = got[fs[0]]
                self.assertEqual(outcome, "delivered", p.stdout)
                self.assertIn("sent as Little Endian Explicit", detail)
                ds = pydicom.dcmread(stored[self.uid(fs[0])])
                self.assertEqual(ds.file_meta.TransferSyntaxUID, ExplicitVRLittleEndian)
                self.assertEqual(ds.PixelData, original[ds.SOPInstanceUID].PixelData)
                self.assertEqual(ds.PatientName, original[ds.SOPInstanceUID].PatientName)

    def test_jpeg2000_to_an_uncompressed_only_peer_fails_permanently(self):
        scp = self.storescp()
        src = os.path.join(PYDICOM_TEST_FILES, "MR_small_jp2klossless.dcm")
        f = os.path.join(self.workdir, "j2k.dcm")
        shutil.copy(src, f)
        got, p = self.send(self.dicom(scp.port), [f], expect_ok=False)
        outcome, detail = got[f]
        self.assertEqual(outcome, "permanent failure", p.stdout)
        self.assertIn("cannot convert JPEG 2000", detail)
        self.assertIn("to a transfer syntax the destination accepts", detail)
        self.assertEqual(scp.files(), [])

    # -- refusals and failures --------------------------------------------------------------

    def test_refused_sop_class_is_a_permanent_failure(self):
        scp = self.storescp(extra_args=association_profile(self.workdir, ["MRImageStorage"]))
        _, ct = self.make_series(2, modality="CT")
        _, mr = self.make_series(1, modality="MR")
        got, p = self.send(self.dicom(scp.port), ct + mr, expect_ok=False)
        for f in ct:
            self.assertEqual(got[f][0], "permanent failure", p.stdout)
            self.assertIn("destination refused SOP class CT Image Storage", got[f][1])
        self.assertEqual(got[mr[0]], ("delivered", ""), p.stdout)
        self.assertEqual(list(self.received(scp)), [self.uid(mr[0])])
        self.assertIn("FAIL dest: 1 of 3 delivered", p.stdout)

    def test_permanent_association_rejection(self):
        # ferry's receiver checks the called AE title; storescp --refuse rejects everyone.
        f = self.ferry(receiver={"check_called_ae_title": True}).start()
        scp = self.storescp(extra_args=["--refuse"])
        _, files = self.make_series(2)
        cases = {
            "wrong called AE title": (self.dicom(f.port, aet="NOTFERRY"),
                                      'called AE title "NOTFERRY" not recognised'),
            "refused": (self.dicom(scp.port), "rejected permanent"),
        }
        for name, (target, reason) in cases.items():
            with self.subTest(case=name):
                got, p = self.send(target, files, expect_ok=False)
                for path in files:
                    self.assertEqual(got[path][0], "permanent failure", p.stdout)
                    self.assertIn("association rejected", got[path][1])
                    self.assertIn(reason, got[path][1])
                check = self.targets("test", self.config(dest=target), "dest")
                self.assertEqual(check.returncode, 1, check.stdout)
                self.assertIn(reason, check.stdout)
        self.assertEqual(f.instances(), [])

    def test_nothing_listening_is_transient(self):
        port = free_port()
        _, files = self.make_series(2)
        got, p = self.send(self.dicom(port), files, expect_ok=False)
        for path in files:
            self.assertEqual(got[path][0], "transient failure", p.stdout)
            self.assertIn(f"connection refused at 127.0.0.1:{port}", got[path][1])

    def test_abort_mid_transfer_is_transient_for_unconfirmed_instances(self):
        scp = self.storescp(extra_args=["--abort-after"])
        _, files = self.make_series(3)
        got, p = self.send(self.dicom(scp.port), files, expect_ok=False)
        for path in files:
            self.assertEqual(got[path][0], "transient failure", p.stdout)
        self.assertIn("aborted the association", got[files[0]][1])
        self.assertIn("not sent: the association broke off", got[files[2]][1])

    def test_out_of_resources_is_transient_with_the_status_code(self):
        # ferry's receiver answers 0xA700 when free disk space is below its reserve.
        f = self.ferry(receiver={"disk_reserve_mb": 1 << 39}).start()
        _, files = self.make_series(2)
        got, p = self.send(self.dicom(f.port, aet="FERRY"), files, expect_ok=False)
        for path in files:
            outcome, detail = got[path]
            self.assertEqual(outcome, "transient failure", p.stdout)
            self.assertIn("0xA700", detail)
            self.assertIn("out of resources", detail)

    # -- targets test -----------------------------------------------------------------------

    def test_targets_test_echoes_the_destination(self):
        scp = self.storescp()
        config = self.config(pacs=self.dicom(scp.port), down=self.dicom(free_port()))
        p = self.targets("test", config, "pacs")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn(f"PASS pacs (dicom DEST@127.0.0.1:{scp.port})", p.stdout)
        self.assertIn("Received Echo Request", wait_for(
            lambda: "Received Echo Request" in scp.log_text() and scp.log_text(), 10,
            what="storescp to log the echo"))
        p = self.targets("test", config, "down")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"^FAIL down .*: connection refused at 127\.0\.0\.1:\d+ — "
                                   r"is the destination running\?")

    # -- TLS --------------------------------------------------------------------------------

    def test_tls(self):
        pki = tempfile.mkdtemp(dir=self.workdir, prefix="pki-")
        make_ca(pki, "ca")
        make_ca(pki, "rogue-ca")
        make_cert(pki, "server", "ca", "serverAuth")
        make_cert(pki, "client", "ca", "clientAuth")
        pem = lambda name: os.path.join(pki, name)  # noqa: E731
        scp = self.storescp(extra_args=["+tls", pem("server.key"), pem("server.crt"),
                                        "+cf", pem("ca.crt"), "+B"])
        tls = {"enabled": True, "key": pem("client.key"), "certificate": pem("client.crt"),
               "ca": pem("ca.crt")}
        target = self.dicom(scp.port, tls=tls)
        check = self.targets("test", self.config(dest=target), "dest")
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("dicom (TLS)", check.stdout)
        _, files = self.make_series(2)
        got, p = self.send(target, files)
        stored = self.received(scp)
        for path in files:
            self.assertEqual(got[path], ("delivered", ""), p.stdout)
            self.assertEqual(dataset_bytes(stored[self.uid(path)]), dataset_bytes(path))
        with self.subTest(case="server certificate from an untrusted CA"):
            rogue = self.dicom(scp.port, tls=dict(tls, ca=pem("rogue-ca.crt")))
            check = self.targets("test", self.config(dest=rogue), "dest")
            self.assertEqual(check.returncode, 1, check.stdout)
            self.assertIn("TLS", check.stdout)
        with self.subTest(case="plain TCP to a TLS destination"):
            check = self.targets("test", self.config(dest=self.dicom(scp.port)), "dest")
            self.assertEqual(check.returncode, 1, check.stdout)
        with self.subTest(case="the host name the certificate names"):
            by_name = dict(target, ip="localhost")
            check = self.targets("test", self.config(dest=by_name), "dest")
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertEqual(len(scp.files()), 2)

    def test_tls_certificate_for_another_host_is_refused(self):
        pki = tempfile.mkdtemp(dir=self.workdir, prefix="pki-")
        make_ca(pki, "ca")
        make_cert(pki, "server", "ca", "serverAuth", names="DNS:pacs.elsewhere.example")
        pem = lambda name: os.path.join(pki, name)  # noqa: E731
        scp = self.storescp(extra_args=["+tls", pem("server.key"), pem("server.crt"), "-ic"])
        target = self.dicom(scp.port, tls={"enabled": True, "ca": pem("ca.crt")})
        check = self.targets("test", self.config(dest=target), "dest")
        self.assertEqual(check.returncode, 1, check.stdout)
        self.assertRegex(check.stdout, r"^FAIL dest .*TLS handshake with 127\.0\.0\.1:\d+ failed")
        self.assertIn('the certificate names "127.0.0.1"', check.stdout)
        _, files = self.make_series(1)
        got, p = self.send(target, files, expect_ok=False)
        self.assertNotEqual(got[files[0]][0], "delivered", p.stdout)
        self.assertEqual(scp.files(), [])
        with self.subTest(case="verify_host false: the chain is still checked, the name not"):
            lax = self.dicom(scp.port, tls={"enabled": True, "ca": pem("ca.crt"),
                                            "verify_host": False})
            check = self.targets("test", self.config(dest=lax), "dest")
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    # -- calling AE title through the pipeline ------------------------------------------------

    def test_calling_ae_title_and_sender_ip_through_serve(self):
        scp = self.storescp(record_calls=True)
        targets = {
            "pass_sender": self.dicom(scp.port, pass_sender_aet=True),
            "pass_receiver": self.dicom(scp.port, pass_receiver_aet=True),
            "back_to_sender": dict(self.dicom(scp.port, aet_source="FERRYOUT"), ip="sender"),
        }
        rules = {
            "ct": {"rule": "@Modality@ == 'CT'", "target": "pass_sender"},
            "pt": {"rule": "@Modality@ == 'PT'", "target": "pass_receiver"},
            "mr": {"rule": "@Modality@ == 'MR'", "target": "back_to_sender"},
        }
        f = self.ferry(mode="serve", extra={"rules": rules, "targets": targets,
                                            "router": {"series_complete_grace": 0.3}}).start()
        _, ct = self.make_series(2, modality="CT")
        _, pt = self.make_series(1, modality="PT")
        _, mr = self.make_series(1, modality="MR")
        self.assertEqual(storescu(f.port, ct, aet="SCANNER7").returncode, 0)
        self.assertEqual(storescu(f.port, pt, aet="SCANNER8", aec="GATEWAY").returncode, 0)
        self.assertEqual(storescu(f.port, mr, aet="SCANNER9").returncode, 0)
        wait_for(lambda: len(scp.calls()) >= 4, 60, what="4 instances at storescp")
        self.assertEqual(sorted(scp.calls()), [("FERRYOUT", "DEST"), ("GATEWAY", "DEST"),
                                               ("SCANNER7", "DEST"), ("SCANNER7", "DEST")])
        self.assertEqual(sorted(self.received(scp)), sorted(self.uid(p) for p in ct + pt + mr))
        self.assertEqual(f.stop(), 0)

if __name__ == "__main__":
    unittest.main()

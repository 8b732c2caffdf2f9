"""Receiving: C-ECHO, C-STORE into the spool, transfer syntaxes byte-exact, events, AE checks."""
import json
import os
import unittest
import zlib

import pydicom

from ferrytest import (PYDICOM_TEST_FILES, FerryTestCase, dataset_bytes, echoscu, run,
                       storescu, wait_events, FERRY_BIN)


class ReceiveTest(FerryTestCase):

    def test_echo(self):
        f = self.ferry().start()
        p = echoscu(f.port)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_series_lands_in_incoming_with_tags_and_association_state(self):
        f = self.ferry().start()
        series_uid, files = self.make_series(5, patient="M\u00fcller^Hans")
        p = storescu(f.port, files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        stored = f.instances(series_uid)
        self.assertEqual(len(stored), 5)
        # Byte-exact: the dataset after the meta header is what the sender had.
        by_sop = {pydicom.dcmread(s, stop_before_pixels=True).SOPInstanceUID: s for s in stored}
        for src in files:
            sop = pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID
            self.assertEqual(os.path.basename(by_sop[sop]), sop + ".dcm")
            self.assertEqual(dataset_bytes(by_sop[sop]), dataset_bytes(src))
        wait_events(f, "association.closed", 1)
        series_dir = os.path.join(f.incoming(), series_uid)
        with open(os.path.join(series_dir, "series.tags"), encoding="utf-8") as fh:
            tags = json.load(fh)
        self.assertEqual(tags["SeriesInstanceUID"], series_uid)
        self.assertEqual(tags["Modality"], "CT")
        self.assertEqual(tags["PatientName"], "M\u00fcller^Hans")
        self.assertEqual(tags["SenderAET"], "STORESCU")
        self.assertTrue(all(isinstance(v, str) for v in tags.values()))
        assoc = os.listdir(os.path.join(series_dir, "associations"))
        self.assertEqual(len(assoc), 1)
        self.assertTrue(assoc[0].endswith(".ended"), assoc)
        events = f.events()
        kinds = [e["event"] for e in events]
        self.assertIn("service.started", kinds)
        self.assertEqual(kinds.count("series.first_seen"), 1)
        closed = [e for e in events if e["event"] == "association.closed"]
        self.assertEqual(len(closed), 1)
        self.assertEqual(closed[0]["details"]["instances"], 5)
        self.assertEqual(closed[0]["details"]["result"], "released")
        self.assertEqual(closed[0]["details"]["calling_ae"], "STORESCU")
        self.assertGreater(closed[0]["details"]["bytes"], 5 * 512)
        self.assertEqual(f.tmp_files(), [])
        # One info line per association, not per instance.
        self.assertEqual(f.log_text().count("instances stored"), 1)
        self.assertEqual(f.stop(), 0)
        self.assertIn("service.stopped", [e["event"] for e in f.events()])

    def test_transfer_syntaxes_are_stored_byte_exact(self):
        # storescu converts uncompressed data to the syntax it prefers unless told which one
        # to propose; these options make it propose exactly each file's transfer syntax.
        option_for_ts = {
            "1.2.840.10008.1.2": "-xi", "1.2.840.10008.1.2.1": "-xe",
            "1.2.840.10008.1.2.2": "-xb", "1.2.840.10008.1.2.1.99": "-xd",
            "1.2.840.10008.1.2.4.50": "-xy", "1.2.840.10008.1.2.4.51": "-xx",
            "1.2.840.10008.1.2.4.70": "-xs", "1.2.840.10008.1.2.4.80": "-xt",
            "1.2.840.10008.1.2.4.90": "-xv", "1.2.840.10008.1.2.4.91": "-xw",
            "1.2.840.10008.1.2.5": "-xr",
        }
        names = ["MR_small_implicit.dcm", "MR_small.dcm", "MR_small_bigendian.dcm",
                 "image_dfl.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPGExtended.dcm",
                 "SC_rgb_dcmtk_+eb+cy+np.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "MR_small_jp2klossless.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm"]
        sources = [os.path.join(PYDICOM_TEST_FILES, n) for n in names]
        if not all(os.path.exists(s) for s in sources):
            self.skipTest("pydicom test files missing (Debian python3-pydicom)")
        # JPEG lossless (process 14, selection value 1) made with DCMTK's encoder.
        lossless = self.file("jpeg_lossless.dcm")
        run(["dcmcjpeg", "+e1", sources[1], lossless], check=True)
        sources.append(lossless)
        # storescu re-encodes sequences with explicit lengths while sending; normalise the
        # sources the same way so that "as sent" and "as in the file" are the same bytes.
        normalised = []
        for src in sources:
            out = self.file("norm-" + os.path.basename(src))
            run(["dcmconv", "--length-explicit", src, out], check=True)
            normalised.append(out)
        sources = normalised
        f = self.ferry().start()
        for src in sources:
            name = os.path.basename(src)
            ds = pydicom.dcmread(src, stop_before_pixels=True)
            ts = str(ds.file_meta.TransferSyntaxUID)
            p = storescu(f.port, [src], extra=["-R", option_for_ts[ts]])
            self.assertEqual(p.returncode, 0, f"{name}: {p.stdout}{p.stderr}")
            stored = os.path.join(f.incoming(), ds.SeriesInstanceUID, ds.SOPInstanceUID + ".dcm")
            self.assertTrue(os.path.exists(stored), name)
            got = pydicom.dcmread(stored, stop_before_pixels=True)
            self.assertEqual(str(got.file_meta.TransferSyntaxUID), ts, name)
            sent = dataset_bytes(src)
            # DCMTK senders drop a trailing Data Set Trailing Padding element (FFFC,FFFC).
            padding = sent.rfind(b"\xfc\xff\xfc\xff")
            if padding > 0 and len(sent) - padding < 1024:
                sent = sent[:padding]
            got_bytes = dataset_bytes(stored)
            if ts == "1.2.840.10008.1.2.1.99":
                # storescu inflates and deflates again while sending, so the compressed bytes
                # differ; what ferry stored must still be the same deflated dataset.
                got_bytes = zlib.decompress(got_bytes, -15)
                sent = zlib.decompress(sent, -15)
            self.assertEqual(got_bytes, sent, name)

    def test_dcmsend_and_duplicate_replaces(self):
        f = self.ferry().start()
        series_uid, files = self.make_series(3)
        for _ in range(2):
            p = run(["dcmsend", "-aec", "FERRY", "127.0.0.1", str(f.port), *files])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(f.instances(series_uid)), 3)
        replaced = [e for e in f.events() if e["event"] == "instance.replaced"]
        self.assertEqual(len(replaced), 3)
        wait_events(f, "association.closed", 2)
        ended = os.listdir(os.path.join(f.incoming(), series_uid, "associations"))
        self.assertEqual(len(ended), 2)

    def test_called_ae_title_check(self):
        f = self.ferry(receiver={"check_called_ae_title": True}).start()
        self.assertNotEqual(echoscu(f.port, aec="WRONG").returncode, 0)
        self.assertEqual(echoscu(f.port, aec="FERRY").returncode, 0)
        rejected = wait_events(f, "association.rejected", 1)
        self.assertEqual(len(rejected), 1)
        self.assertIn("WRONG", f.log_text())

    def test_calling_ae_and_network_allow_lists(self):
        f = self.ferry(receiver={"allowed_calling_ae_titles": ["GOOD"]}).start()
        self.assertNotEqual(echoscu(f.port, aet="BAD").returncode, 0)
        self.assertEqual(echoscu(f.port, aet="GOOD").returncode, 0)
        g = self.ferry(receiver={"allowed_networks": ["10.0.0.0/8"]}).start()
        self.assertNotEqual(echoscu(g.port).returncode, 0)
        h = self.ferry(receiver={"allowed_networks": ["127.0.0.0/8"]}).start()
        self.assertEqual(echoscu(h.port).returncode, 0)

    def test_non_storage_sop_class_needs_accept_any(self):
        # A made-up SOP class is refused by default and accepted with accept_any_sop_class.
        src = self.file("private.dcm")
        from ferrytest import make_instance
        make_instance(src)
        ds = pydicom.dcmread(src)
        ds.SOPClassUID = "1.2.3.4.5.6.7"
        ds.file_meta.MediaStorageSOPClassUID = "1.2.3.4.5.6.7"
        ds.save_as(src)
        # dcmsend -nuc proposes SOP classes it does not know (storescu refuses to).
        f = self.ferry().start()
        p = run(["dcmsend", "-nuc", "-aec", "FERRY", "127.0.0.1", str(f.port), src])
        self.assertIn("no acceptable presentation contexts", (p.stdout + p.stderr).lower())
        self.assertEqual(f.instances(), [])
        g = self.ferry(receiver={"accept_any_sop_class": True}).start()
        p = run(["dcmsend", "-nuc", "-aec", "FERRY", "127.0.0.1", str(g.port), src])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(g.instances()), 1)


class CliTest(FerryTestCase):

    def test_config_check_reports_every_error_and_exits_1(self):
        path = self.file("bad.json")
        with open(path, "w") as fh:
            json.dump({"data_folder": self.workdir, "receiver": {"prot": 1, "port": "x"}}, fh)
        p = run([FERRY_BIN, "config", "check", "--config", path])
        self.assertEqual(p.returncode, 1)
        self.assertIn("$.receiver.prot", p.stdout)
        self.assertIn("did you mean \"port\"", p.stdout)
        self.assertIn("$.receiver.port", p.stdout)

    def test_config_check_valid_prints_summary(self):
        path = self.file("good.json")
        with open(path, "w") as fh:
            json.dump({"data_folder": self.workdir}, fh)
        p = run([FERRY_BIN, "config", "check", "--config", path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(p.stdout.strip().splitlines()), 1)
        self.assertIn("valid", p.stdout)

    def test_serve_refuses_broken_config(self):
        path = self.file("bad.json")
        with open(path, "w") as fh:
            fh.write("{not json")
        p = run([FERRY_BIN, "serve", "--config", path], timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not valid JSON", p.stderr)


if __name__ == "__main__":
    unittest.main()

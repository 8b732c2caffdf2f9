"""A receiver killed with SIGKILL in the middle of a transfer: every instance the sender got a
success response for survives byte-exact, nothing partial is visible, and the next start cleans
up staging and marks the dead associations as ended."""
import glob
import os
import subprocess
import unittest

import pydicom

from ferrytest import (TOOL_ENV, complete_dicom, dataset_bytes, echoscu, free_port, Ferry,
                       FerryTestCase, storescu, store_results, wait_for)


class CrashTest(FerryTestCase):

    def test_kill_9_during_transfer(self):
        count = 200
        series_uid, files = self.make_series(count, rows=362, cols=362)  # ~256 KB each
        f = self.ferry(receiver={"durability": "fsync"}).start()
        sender = subprocess.Popen(["storescu", "-v", "-aec", "FERRY", "-nh", "-xe", "127.0.0.1",
                                   str(f.port), *files], env=TOOL_ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            tmp = os.path.join(f.data, "tmp", "receiver")

            def mid_transfer():
                # After 40% of the instances, while the next one is being written to staging.
                if sender.poll() is not None:
                    return True
                return os.listdir(tmp) and len(f.instances()) >= count * 2 // 5
            wait_for(mid_transfer, 60, interval=0.001, what="40% of the instances to arrive")
            self.assertIsNone(sender.poll(), "the transfer ended before the kill")
            f.kill()
            output, _ = sender.communicate(timeout=60)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait(timeout=10)
        results = store_results(output)
        self.assertTrue(results, output)
        acked = [src for src, response in results if response == "Success"]
        failed = [(src, response) for src, response in results
                  if response is not None and response != "Success"]
        self.assertEqual(failed, [], "ferry answered a failure before it was killed")
        self.assertGreaterEqual(len(acked), count * 2 // 5 - 1)
        self.assertLess(len(acked), count, "the kill came after the whole transfer")

        # State the killed process left behind: its association is still marked open.
        open_markers = glob.glob(os.path.join(f.incoming(), "*", "associations", "*.open"))
        self.assertEqual(len(open_markers), 1, open_markers)
        staging_before = sorted(os.listdir(os.path.join(f.data, "tmp", "receiver")))

        # Nothing partial is visible in incoming/, even before the restart.
        sop_of = {}
        for src in files:
            sop_of[src] = pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID
        stored = f.instances()
        for path in stored:
            self.assertTrue(complete_dicom(path), f"partial file in incoming/: {path}")
        stored_sops = {os.path.basename(p)[:-4] for p in stored}
        acked_sops = {sop_of[src] for src in acked}
        # Every acknowledged instance is there, byte-exact.
        for src in acked:
            path = os.path.join(f.incoming(), series_uid, sop_of[src] + ".dcm")
            self.assertTrue(os.path.exists(path), f"acknowledged instance lost: {src}")
            self.assertEqual(dataset_bytes(path), dataset_bytes(src), src)
        # At most the one in flight was stored without its response getting out.
        self.assertLessEqual(len(stored_sops - acked_sops), 1, stored_sops - acked_sops)
        for path in stored:
            src = next(s for s in files if sop_of[s] == os.path.basename(path)[:-4])
            self.assertEqual(dataset_bytes(path), dataset_bytes(src), path)

        # Restart on the same data folder.
        g = Ferry(f.workdir, port=f.port, receiver={"durability": "fsync"})
        self._ferries.append(g)
        g.start()
        self.assertEqual(os.listdir(os.path.join(g.data, "tmp", "receiver")), [],
                         f"staging not emptied (before restart: {staging_before})")
        markers = glob.glob(os.path.join(g.incoming(), "*", "associations", "*"))
        self.assertEqual([os.path.basename(m) for m in markers],
                         [os.path.basename(open_markers[0])[:-len(".open")] + ".ended"])
        self.assertIn("marked as ended", g.log_text())
        self.assertEqual(sorted(g.instances()), sorted(stored))
        self.assertEqual(echoscu(g.port).returncode, 0)

        # The sender retries what was not acknowledged; the series is then complete.
        rest = [src for src in files if src not in acked]
        p = subprocess.run(["storescu", "-aec", "FERRY", "-nh", "-xe", "127.0.0.1", str(g.port),
                            *rest], env=TOOL_ENV, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(g.instances(series_uid)), count)
        for src in files:
            path = os.path.join(g.incoming(), series_uid, sop_of[src] + ".dcm")
            self.assertEqual(dataset_bytes(path), dataset_bytes(src), src)
        self.assertEqual(g.stop(), 0)
        print(f"\nkilled after {len(acked)} acknowledged, {len(stored)} stored; staging left by "
              f"the killed run: {len(staging_before)} file(s)")

    def test_intake_log_has_one_owner_and_goes_away_without_fsync(self):
        _, files = self.make_series(3)
        f = self.ferry().start()  # durability fsync: the intake log is on by default
        self.assertEqual(storescu(f.port, files).returncode, 0)
        intake = os.path.join(f.data, "intake")
        self.assertTrue(os.path.exists(os.path.join(intake, "checkpoint")))
        self.assertGreaterEqual(len(glob.glob(os.path.join(intake, "*.seg"))), 1)
        self.assertIn("durability fsync, intake log", f.log_text())

        # A second receiver on the same data folder refuses to start and says why.
        second = Ferry(f.workdir, port=free_port())
        self._ferries.append(second)
        second.start(wait=False)
        wait_for(lambda: second.proc.poll() is not None, 30, what="the second receiver to exit")
        self.assertEqual(second.proc.returncode, 1)
        self.assertIn(f"another ferry receiver (pid {f.proc.pid} on host", second.log_text())
        self.assertIn(f"already works on the data folder {f.data}", second.log_text())
        self.assertEqual(echoscu(f.port).returncode, 0)
        self.assertEqual(f.stop(), 0)

        # Without fsync there is no log: the folder goes, so the router waits for nothing.
        g = Ferry(f.workdir, port=f.port, receiver={"durability": "os"})
        self._ferries.append(g)
        g.start()
        self.assertFalse(os.path.exists(intake))
        self.assertEqual(g.stop(), 0)
        self.assertEqual(len(g.instances()), 3)


if __name__ == "__main__":
    unittest.main()

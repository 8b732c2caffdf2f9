"""Concurrent senders: separate series, a limit of one association at a time, and two senders
racing to create the same new series."""
import json
import os
import subprocess
import threading
import unittest

import pydicom

from ferrytest import (TOOL_ENV, dataset_bytes, echoscu, FerryTestCase, wait_events)


def send_concurrently(port, file_lists, tool="storescu", timeout=120):
    """Starts one sender per file list at the same moment; returns [(returncode, output)]."""
    barrier = threading.Barrier(len(file_lists))
    results = [None] * len(file_lists)

    def sender(i, files):
        if tool == "storescu":
            cmd = ["storescu", "-aet", f"SENDER{i}", "-aec", "FERRY", "-nh", "-ta", "60",
                   "127.0.0.1", str(port), *files]
        else:
            cmd = ["dcmsend", "-aet", f"SENDER{i}", "-aec", "FERRY", "-ta", "60", "127.0.0.1",
                   str(port), *files]
        barrier.wait(timeout=30)
        proc = subprocess.Popen(cmd, env=TOOL_ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            out += f"\n(killed after {timeout} s)"
        results[i] = (proc.returncode, out)

    threads = [threading.Thread(target=sender, args=(i, files)) for i, files in
               enumerate(file_lists)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 40)
    return results


class ConcurrencyTest(FerryTestCase):

    def assert_series_stored(self, f, series_uid, files):
        stored = f.instances(series_uid)
        self.assertEqual(len(stored), len(files))
        by_name = {os.path.basename(p): p for p in stored}
        for src in files:
            sop = pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID
            self.assertIn(sop + ".dcm", by_name)
            self.assertEqual(dataset_bytes(by_name[sop + ".dcm"]), dataset_bytes(src))

    def test_four_senders_four_series(self):
        f = self.ferry().start()
        series = [self.make_series(50) for _ in range(4)]
        results = send_concurrently(f.port, [files for _, files in series])
        for code, out in results:
            self.assertEqual(code, 0, out)
        self.assertEqual(len(f.instances()), 200)
        for uid, files in series:
            self.assert_series_stored(f, uid, files)
        wait_events(f, "association.closed", 4)
        events = f.events()
        closed = [e["details"] for e in events if e["event"] == "association.closed"]
        self.assertEqual(len(closed), 4)
        self.assertEqual(sorted(d["calling_ae"] for d in closed),
                         ["SENDER0", "SENDER1", "SENDER2", "SENDER3"])
        for d in closed:
            self.assertEqual(d["result"], "released")
            self.assertEqual(d["instances"], 50)
            self.assertEqual(d["failed"], 0)
            self.assertEqual(d["series"], 1)
        self.assertEqual([e["event"] for e in events].count("series.first_seen"), 4)
        # They were served side by side: several associations open before the first closed.
        kinds = [e["event"] for e in events if e["event"].startswith("association.")]
        self.assertGreaterEqual(kinds.index("association.closed"), 2, kinds)
        self.assertEqual(f.tmp_files(), [])
        self.assertEqual(f.stop(), 0)

    def test_max_associations_one_queues_instead_of_rejecting(self):
        f = self.ferry(receiver={"max_associations": 1}).start()
        series = [self.make_series(50) for _ in range(4)]
        results = send_concurrently(f.port, [files for _, files in series])
        for code, out in results:
            self.assertEqual(code, 0, out)
        self.assertEqual(len(f.instances()), 200)
        for uid, files in series:
            self.assert_series_stored(f, uid, files)
        wait_events(f, "association.closed", 4)
        events = f.events()
        self.assertFalse([e for e in events if e["event"] == "association.rejected"])
        # One at a time: in the journal each association closes before the next one opens.
        sequence = [(e["event"], e["details"]["association"]) for e in events
                    if e["event"] in ("association.opened", "association.closed")]
        self.assertEqual(len(sequence), 8, sequence)
        for i in range(0, 8, 2):
            self.assertEqual(sequence[i][0], "association.opened", sequence)
            self.assertEqual(sequence[i + 1], ("association.closed", sequence[i][1]), sequence)
        closed = [e["details"] for e in events if e["event"] == "association.closed"]
        self.assertEqual([d["instances"] for d in closed], [50] * 4)
        self.assertEqual(echoscu(f.port).returncode, 0)
        self.assertEqual(f.stop(), 0)

    def test_two_senders_race_to_create_the_same_series(self):
        f = self.ferry().start()
        rounds = 6
        for r in range(rounds):
            uid, files = self.make_series(30)
            # Overlapping halves: the first instances of each sender create the folder at the
            # same moment, the middle third arrives twice (replacements).
            tool = "storescu" if r % 2 == 0 else "dcmsend"
            results = send_concurrently(f.port, [files[:20], files[10:][::-1]], tool=tool)
            for code, out in results:
                self.assertEqual(code, 0, out)
            wait_events(f, "association.closed", 2 * (r + 1))
            with self.subTest(round=r, tool=tool):
                self.assertEqual(len(f.series_dirs()), r + 1)
                self.assert_series_stored(f, uid, files)
                first_seen = [e for e in f.events() if e["event"] == "series.first_seen"
                              and e["series_uid"] == uid]
                self.assertEqual(len(first_seen), 1)
                series_dir = os.path.join(f.incoming(), uid)
                with open(os.path.join(series_dir, "series.tags"), encoding="utf-8") as fh:
                    self.assertEqual(json.load(fh)["SeriesInstanceUID"], uid)
                markers = sorted(os.listdir(os.path.join(series_dir, "associations")))
                self.assertEqual(len(markers), 2, markers)
                self.assertTrue(all(m.endswith(".ended") for m in markers), markers)
                # Nothing but instances, the tags and the association markers in the folder.
                self.assertEqual(sorted(os.listdir(series_dir)),
                                 sorted(["associations", "series.tags"] +
                                        [os.path.basename(p) for p in f.instances(uid)]))
        # The overlapping third arrived twice: every second arrival is journalled as
        # instance.replaced, even when both copies are published at the very same moment.
        replaced = [e for e in f.events() if e["event"] == "instance.replaced"]
        self.assertEqual(len(replaced), rounds * 10)
        self.assertEqual(f.tmp_files(), [])
        self.assertEqual(f.stop(), 0)


if __name__ == "__main__":
    unittest.main()

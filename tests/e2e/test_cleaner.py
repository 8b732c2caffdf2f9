"""End-to-end tests of `ferry cleaner`: the real binary deletes finished task folders from a real
data folder, by retention inside the off-peak window and in a disk emergency, and journals it."""
import json
import os
import shutil
import signal
import time
import unittest

from ferrytest import FerryTestCase, make_instance, wait_for
from pydicom.uid import generate_uid


def hhmm(minute_of_day):
    minute_of_day %= 24 * 60
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def window_covering_now():
    """An off-peak window (start, end) that wraps midnight and covers every minute of the day
    except the one after the next: open now and for the next minute whatever the time zone."""
    now = time.localtime()
    minute = now.tm_hour * 60 + now.tm_min
    return hhmm(minute + 2), hhmm(minute + 1)


class CleanerTest(FerryTestCase):
    def start_cleaner(self, cleaner_options):
        f = self.ferry(mode="cleaner", extra={"cleaner": cleaner_options})
        self.data = f.data
        return f

    def make_task(self, stage, age_s, instances=2, completed_at=None):
        """A task folder as the router and dispatcher leave it: task.json and .dcm files; its
        folder's modification time is `age_s` seconds ago."""
        task_id = generate_uid(prefix=None).replace(".", "")[:20]
        folder = os.path.join(self.data, stage, task_id)
        os.makedirs(folder)
        series_uid = generate_uid()
        task = {"id": task_id,
                "info": {"action": "route", "uid": series_uid, "uid_type": "series",
                         "applied_rule": "all"},
                "dispatch": {"target_name": ["pacs"]},
                "ferry": {"stage": stage, "series_uid": series_uid}}
        if completed_at is not None:
            task["ferry"]["dispatch"] = {"completed_at": completed_at}
        with open(os.path.join(folder, "task.json"), "w") as f:
            json.dump(task, f)
        for i in range(instances):
            sop = generate_uid()
            make_instance(os.path.join(folder, f"{sop}.dcm"), series_uid=series_uid, sop_uid=sop,
                          instance_number=i + 1)
        then = time.time() - age_s
        os.utime(folder, (then, then))
        return task_id

    def exists(self, stage, task_id):
        return os.path.isdir(os.path.join(self.data, stage, task_id))

    def test_retention_in_the_offpeak_window(self):
        start, end = window_covering_now()
        f = self.start_cleaner({"retention": 1, "error_retention": 3600, "offpeak_start": start,
                                "offpeak_end": end, "interval": 1})
        old_success = self.make_task("success", 30)
        # Completed 20 s ago by the dispatcher's record, although the folder looks new.
        recorded = self.make_task("success", 0, completed_at=time.strftime(
            "%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 20)))
        old_discard = self.make_task("discard", 30, instances=1)
        old_error = self.make_task("error", 30)           # error retention is 1 h
        outgoing = self.make_task("outgoing", 3600 * 24)  # unfinished: never deleted
        processing = self.make_task("processing", 3600 * 24)
        # What a cleaner killed mid-deletion leaves behind.
        leftover = os.path.join(self.data, "tmp", "cleaner", "success-killed-1")
        os.makedirs(leftover)
        with open(os.path.join(leftover, "x.dcm"), "wb") as out:
            out.write(b"\0" * 1000)

        f.start(wait=False)
        deleted = wait_for(
            lambda: (lambda ev: ev if len(ev) >= 3 else None)(
                [e for e in f.events("cleaner") if e["event"] == "cleaner.deleted"]),
            timeout=20, what="3 cleaner.deleted events")
        # Another pass (interval 1 s) must not delete anything more.
        time.sleep(2.5)
        self.assertEqual(f.stop(), 0)

        events = [e for e in f.events("cleaner") if e["event"] == "cleaner.deleted"]
        self.assertEqual(len(events), 3, events)
        by_task = {e["task_id"]: e["details"] for e in events}
        self.assertEqual(set(by_task), {old_success, recorded, old_discard})
        for task_id, details in by_task.items():
            self.assertEqual(details["reason"], "retention")
            self.assertGreater(details["bytes"], 1000)
        self.assertEqual(by_task[old_discard]["stage"], "discard")
        self.assertGreaterEqual(by_task[old_success]["age_s"], 29)
        self.assertGreaterEqual(by_task[recorded]["age_s"], 19)
        self.assertLess(by_task[recorded]["age_s"], 60)
        # Oldest first.
        self.assertEqual([e["task_id"] for e in events][-1], recorded)

        self.assertFalse(self.exists("success", old_success))
        self.assertFalse(self.exists("success", recorded))
        self.assertFalse(self.exists("discard", old_discard))
        self.assertTrue(self.exists("error", old_error))
        self.assertTrue(self.exists("outgoing", outgoing))
        self.assertTrue(self.exists("processing", processing))
        self.assertEqual(len(os.listdir(os.path.join(self.data, "outgoing", outgoing))), 3)
        self.assertEqual(os.listdir(os.path.join(self.data, "tmp", "cleaner")), [])
        log = f.log_text()
        self.assertIn("finished removing 1 task(s) whose deletion was interrupted", log)
        self.assertIn("deleted 3 finished task(s)", log)
        kinds = [e["event"] for e in f.events("cleaner")]
        self.assertEqual(kinds[0], "service.started")
        self.assertEqual(kinds[-1], "service.stopped")

    def test_nothing_deleted_outside_the_window(self):
        # An empty window (start == end): retention never applies.
        f = self.start_cleaner({"retention": 1, "offpeak_start": "03:00", "offpeak_end": "03:00",
                                "interval": 1})
        old_success = self.make_task("success", 3600)
        f.start(wait=False)
        wait_for(lambda: any(e["event"] == "service.started" for e in f.events("cleaner")),
                 timeout=20, what="the cleaner to start")
        time.sleep(2.5)
        self.assertEqual(f.stop(), 0)
        self.assertTrue(self.exists("success", old_success))
        self.assertFalse(any(e["event"] == "cleaner.deleted" for e in f.events("cleaner")))

    def test_emergency_deletes_finished_tasks_only(self):
        probe = shutil.disk_usage(self.workdir)
        if probe.used * 100 < 3 * probe.total:
            self.skipTest("the test's file system is less than 3% full")
        # Any real disk is above 2%: the emergency starts at once, outside the window and
        # whatever the retention, and runs out of finished tasks.
        f = self.start_cleaner({"offpeak_start": "03:00", "offpeak_end": "03:00",
                                "emergency_threshold": 2, "low_water": 1, "interval": 1})
        older = self.make_task("success", 600)
        newer = self.make_task("discard", 300)
        error = self.make_task("error", 900)
        outgoing = self.make_task("outgoing", 3600)
        series = os.path.join(self.data, "incoming", generate_uid())
        os.makedirs(series)
        make_instance(os.path.join(series, "a.dcm"))
        f.start(wait=False)
        wait_for(lambda: any(e["event"] == "cleaner.disk_full" for e in f.events("cleaner")),
                 timeout=20, what="cleaner.disk_full")
        self.assertEqual(f.stop(signal.SIGINT), 0)

        events = [e for e in f.events("cleaner") if e["event"] == "cleaner.deleted"]
        # success/ and discard/ oldest first, error/ last.
        self.assertEqual([e["task_id"] for e in events], [older, newer, error])
        self.assertTrue(all(e["details"]["reason"] == "emergency" for e in events))
        self.assertTrue(self.exists("outgoing", outgoing))
        self.assertTrue(os.path.exists(os.path.join(series, "a.dcm")))
        full = [e for e in f.events("cleaner") if e["event"] == "cleaner.disk_full"][0]
        self.assertGreater(full["details"]["bytes"]["outgoing"], 1000)
        self.assertGreater(full["details"]["bytes"]["incoming"], 100)
        log = f.log_text()
        self.assertIn("no finished task is left to delete", log)
        self.assertIn("outgoing/", log)


if __name__ == "__main__":
    unittest.main()

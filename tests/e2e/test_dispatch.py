"""Dispatching: ferry serve (receiver + router + dispatcher) delivers routed series to folder
targets, retries a destination that is down until it comes back, sends a task that failed
permanently to error/ (and back with `ferry task retry`), gives up after the last attempt, and
spreads tasks over target groups."""
import glob
import json
import os
import unittest

from ferrytest import (FERRY_BIN, FerryTestCase, dataset_bytes, free_port, run, storescu,
                       wait_events, wait_for)

FAST_RETRY = {"retry": {"initial_delay": 0.3, "multiplier": 2, "max_delay": 1,
                        "max_attempts": 50}}


class DispatchTest(FerryTestCase):

    def serve(self, targets, rules, dispatcher=None, groups=None):
        extra = {"targets": targets, "rules": rules,
                 "router": {"series_complete_grace": 0.3},
                 "dispatcher": dispatcher or FAST_RETRY}
        if groups:
            extra["target_groups"] = groups
        return self.ferry(mode="serve", extra=extra).start()

    def folder(self, name, create=True):
        path = self.file(name)
        if create:
            os.makedirs(path, exist_ok=True)
        return path

    def tasks(self, f, stage):
        out = {}
        for path in glob.glob(os.path.join(f.data, stage, "*", "task.json")):
            with open(path) as fh:
                out[os.path.basename(os.path.dirname(path))] = json.load(fh)
        return out

    def wait_tasks(self, f, stage, count, timeout=30):
        return wait_for(lambda: (lambda t: t if len(t) >= count else None)(self.tasks(f, stage)),
                        timeout, what=f"{count} task(s) in {stage}/")

    def delivered(self, folder):
        """Task folders under a folder target that are marked complete."""
        return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(folder, "*", ".complete")))

    def assert_same_instances(self, files, task_folder):
        sent = {dataset_bytes(p) for p in files}
        got = {dataset_bytes(p) for p in glob.glob(os.path.join(task_folder, "*.dcm"))}
        self.assertEqual(sent, got)

    def test_default_config_delivers_every_series_to_the_delivered_folder(self):
        workdir = self.file("default")
        os.makedirs(workdir)
        config = os.path.join(workdir, "ferry.json")
        data = os.path.join(workdir, "data")
        self.assertEqual(run([FERRY_BIN, "config", "init", "--config", config,
                              "--data-folder", data]).returncode, 0)
        with open(config) as fh:
            cfg = json.load(fh)
        f = self.ferry(mode="serve")
        cfg["receiver"]["port"] = f.port
        cfg["receiver"]["disk_reserve_mb"] = 0
        cfg["router"] = {"series_complete_grace": 0.3}
        cfg["web"] = {"host": "127.0.0.1", "port": free_port()}  # not the default 8080
        with open(f.config_path, "w") as fh:
            json.dump(cfg, fh)
        f.data = data
        f.start()
        uid, files = self.make_series(4)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        done = wait_for(lambda: self.delivered(os.path.join(data, "delivered")) or None, 30,
                        what="a complete task in delivered/")
        self.assert_same_instances(files, done[0])
        success = self.wait_tasks(f, "success", 1)
        task = next(iter(success.values()))
        self.assertEqual(task["info"]["uid"], uid)
        self.assertEqual(task["dispatch"]["status"]["delivered"]["state"], "complete")
        self.assertTrue(task["ferry"]["streaming"])
        # The task is filed under success/ first, then journalled.
        wait_events(f, "task.completed", 1, service="dispatcher")
        events = [e["event"] for e in f.events("dispatcher")]
        self.assertIn("dispatch.complete", events)

    def test_streaming_false_sends_after_completion(self):
        out = self.folder("out")
        f = self.serve({"out": {"target_type": "folder", "folder": out}},
                       {"all": {"rule": "True", "target": "out", "streaming": False}})
        uid, files = self.make_series(3)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        success = self.wait_tasks(f, "success", 1)
        task_id, task = next(iter(success.items()))
        self.assertNotIn("streaming", task["ferry"])
        self.assertEqual(task["ferry"]["complete_reason"], "associations ended")
        self.assert_same_instances(files, os.path.join(out, task_id))
        self.assertTrue(os.path.exists(os.path.join(out, task_id, ".complete")))

    def test_fan_out_to_several_targets(self):
        targets = {n: {"target_type": "folder", "folder": self.folder(n)} for n in ("a", "b", "c")}
        f = self.serve(targets, {"all": {"rule": "True", "target": ["a", "b", "c"]}})
        uid, files = self.make_series(3)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        success = self.wait_tasks(f, "success", 1)
        task_id = next(iter(success))
        for n in ("a", "b", "c"):
            self.assert_same_instances(files, os.path.join(self.file(n), task_id))

    def test_destination_down_is_retried_until_it_comes_back(self):
        out = self.folder("share", create=False)  # not mounted yet
        f = self.serve({"share": {"target_type": "folder", "folder": out}},
                       {"all": {"rule": "True", "target": "share"}})
        uid, files = self.make_series(2)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        wait_events(f, "dispatch.retry_scheduled", 2, timeout=30, service="dispatcher")
        self.assertEqual(self.tasks(f, "success"), {})
        os.makedirs(out)
        success = self.wait_tasks(f, "success", 1)
        task_id, task = next(iter(success.items()))
        self.assertGreaterEqual(task["ferry"]["dispatch"]["attempts"], 3)
        self.assert_same_instances(files, os.path.join(out, task_id))
        failed = [e for e in f.events("dispatcher") if e["event"] == "dispatch.failed"]
        self.assertFalse(failed[0]["details"]["permanent"])
        self.assertIn("does not exist", failed[0]["details"]["reason"])

    def test_permanent_failure_goes_to_error_and_task_retry_sends_it_again(self):
        out = self.folder("out")
        f = self.serve({"out": {"target_type": "folder", "folder": out}},
                       {"all": {"rule": "True", "target": "out"}})
        os.rmdir(out)
        with open(out, "w") as fh:
            fh.write("a file where the target folder should be")
        uid, files = self.make_series(2)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        errored = self.wait_tasks(f, "error", 1)
        task_id, task = next(iter(errored.items()))
        self.assertEqual(task["ferry"]["dispatch"]["attempts"], 1)  # not retried
        self.assertIn("is not a folder", task["ferry"]["dispatch"]["failure"])
        self.assertEqual(task["info"]["fail_stage"], "DISPATCHING")
        self.assertEqual(task["dispatch"]["status"]["out"]["state"], "error")
        failed = wait_events(f, "task.failed", 1, service="dispatcher")
        self.assertTrue(failed[0]["details"]["permanent"])
        # The operator fixes the target and retries the task.
        os.remove(out)
        os.makedirs(out)
        p = run([FERRY_BIN, "task", "retry", task_id, "--config", f.config_path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.wait_tasks(f, "success", 1)
        self.assert_same_instances(files, os.path.join(out, task_id))
        p = run([FERRY_BIN, "task", "retry", "no-such-task", "--config", f.config_path])
        self.assertEqual(p.returncode, 1)
        self.assertIn("not in", p.stderr)

    def test_gives_up_after_the_last_attempt(self):
        out = self.folder("gone", create=False)
        f = self.serve({"gone": {"target_type": "folder", "folder": out}},
                       {"all": {"rule": "True", "target": "gone"}},
                       dispatcher={"retry": {"initial_delay": 0.1, "max_delay": 0.2,
                                             "max_attempts": 3}})
        uid, files = self.make_series(1)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        errored = self.wait_tasks(f, "error", 1)
        task = next(iter(errored.values()))
        self.assertEqual(task["ferry"]["dispatch"]["attempts"], 3)
        self.assertIn("gave up after 3 attempts", task["ferry"]["dispatch"]["failure"])
        self.assertEqual(len([e for e in f.events("dispatcher")
                              if e["event"] == "dispatch.retry_scheduled"]), 2)

    def test_failover_group_uses_the_next_healthy_target(self):
        primary = self.folder("primary", create=False)  # down
        backup = self.folder("backup")
        f = self.serve({"primary": {"target_type": "folder", "folder": primary},
                        "backup": {"target_type": "folder", "folder": backup}},
                       {"all": {"rule": "True", "target": "pacs"}},
                       groups={"pacs": {"policy": "failover", "targets": ["primary", "backup"]}})
        uid, files = self.make_series(2)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        success = self.wait_tasks(f, "success", 1)
        task_id = next(iter(success))
        self.assert_same_instances(files, os.path.join(backup, task_id))

    def test_round_robin_group_spreads_tasks(self):
        a, b = self.folder("rr-a"), self.folder("rr-b")
        f = self.serve({"a": {"target_type": "folder", "folder": a},
                        "b": {"target_type": "folder", "folder": b}},
                       {"all": {"rule": "True", "target": "both", "streaming": False}},
                       groups={"both": {"policy": "round_robin", "targets": ["a", "b"]}})
        for _ in range(4):
            uid, files = self.make_series(1)
            self.assertEqual(storescu(f.port, files).returncode, 0)
        self.wait_tasks(f, "success", 4)
        self.assertEqual(len(self.delivered(a)), 2)
        self.assertEqual(len(self.delivered(b)), 2)


if __name__ == "__main__":
    unittest.main()

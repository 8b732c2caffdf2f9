"""Processing modules in real containers: `ferry serve` with Podman serving the Docker Engine
API, a module image built from Debian packages (tests/images/modules/mod/module.py, written to
mercure's module contract), real DICOM in over storescu and out to DCMTK storescp.

Covers: a one-step module whose output goes on to a DICOM destination; a two-step chain with
per-step settings; result.json notifications and dynamic routing (allowed and refused); modules
that exit non-zero, write nothing, outlive their timeout, or whose image does not exist; the
processor killed with SIGKILL during a job; the suspend switch; four jobs in parallel; the local
runtime; the module log through the REST API; `ferry task retry` of a failed job.
"""
import glob
import json
import os
import signal
import time
import unittest
import urllib.request

import pydicom

from ferrytest import (FERRY_BIN, FerryTestCase, child_pids, run, storescu, wait_for)
from peers_dicom import StoreScp
from peers_podman import MAP_IMAGE, MODULE_IMAGE, PodmanService

import mercure_model

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_PY = os.path.join(HERE, "..", "images", "modules", "mod", "module.py")


def module(settings=None, **extra):
    m = {"docker_tag": MODULE_IMAGE, "settings": settings or {}}
    m.update(extra)
    return m


class ProcessTest(FerryTestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.podman_dir = tempfile.mkdtemp(prefix="ferry-podman-")
        cls.podman = PodmanService(cls.podman_dir).start()

    @classmethod
    def tearDownClass(cls):
        cls.podman.stop()
        import shutil
        shutil.rmtree(cls.podman_dir, ignore_errors=True)

    def tearDown(self):
        for f in self._ferries:
            self.podman.remove_containers(f"ferry.data={f.data}")
        super().tearDown()

    def serve(self, modules, rules, targets=None, processor=None):
        extra = {
            "modules": modules,
            "rules": rules,
            "targets": targets or {},
            "router": {"series_complete_grace": 0.5},
            "processor": dict({"docker_socket": self.podman.socket}, **(processor or {})),
            "dispatcher": {"retry": {"initial_delay": 1}},
            "supervisor": {"restart_backoff_initial": 1},
        }
        return self.ferry(mode="serve", extra=extra).start()

    def folder(self, name):
        path = self.file(name)
        os.makedirs(path, exist_ok=True)
        return path

    def tasks(self, f, stage):
        return sorted(os.path.basename(p) for p in glob.glob(os.path.join(f.data, stage, "*")))

    def wait_task(self, f, stage, timeout=60):
        return wait_for(lambda: self.tasks(f, stage), timeout, interval=0.1,
                        what=f"a task in {stage}/")[0]

    def task_json(self, f, stage, task_id):
        with open(os.path.join(f.data, stage, task_id, "task.json")) as fh:
            return json.load(fh)

    def events(self, f, kind):
        return [e for e in f.events("processor") if e["event"] == kind]

    def wait_events(self, f, kind, count, timeout=10):
        """The processor journals a job's end right after it publishes the result."""
        return wait_for(lambda: len(self.events(f, kind)) >= count and self.events(f, kind),
                        timeout, what=f"{count} {kind} event(s)")

    def send(self, f, count=3, description="HEAD CT"):
        series_uid, files = self.make_series(count, series_description=description)
        storescu(f.port, files)
        return series_uid, files

    def test_one_step_module_sends_its_output_to_a_dicom_destination(self):
        with StoreScp(self.workdir) as scp:
            f = self.serve(
                {"describe": module({"description": "AI RESULT"})},
                {"ai": {"rule": "True", "action": "both", "processing_module": "describe",
                        "target": "pacs"}},
                {"pacs": {"target_type": "dicom", "ip": "127.0.0.1", "port": scp.port,
                          "aet_target": scp.aet}})
            series_uid, files = self.send(f)
            scp.wait_files(3, timeout=90)
            task_id = self.wait_task(f, "success")
            received = [pydicom.dcmread(p) for p in scp.files()]
            self.assertEqual({ds.SeriesDescription for ds in received}, {"AI RESULT"})
            new_series = {ds.SeriesInstanceUID for ds in received}
            self.assertEqual(len(new_series), 1)
            self.assertNotIn(series_uid, new_series)
            originals = {pydicom.dcmread(p).SOPInstanceUID for p in files}
            self.assertFalse(originals & {ds.SOPInstanceUID for ds in received})
            task = self.task_json(f, "success", task_id)
            step = task["ferry"]["process"]["steps"][0]
            self.assertEqual(step["exit_code"], 0)
            self.assertIn(MODULE_IMAGE, step["image"])
            # The module saw mercure's task.json and mercure's file names, ran as ferry's uid.
            with open(os.path.join(f.data, "success", task_id, "logs", "1-describe.log")) as fh:
                log = fh.read()
            self.assertIn(f"uid={os.getuid()}", log)
            self.assertIn('"description": "AI RESULT"', log)
            self.assertIn("wrote 3 file(s)", log)
            # What the module saw validates under mercure's Task model (unknown fields refused).
            seen = json.loads(next(line for line in log.splitlines()
                                   if line.startswith("task.json: "))[len("task.json: "):])
            self.assertNotIn("ferry", seen)
            mercure_model.Task.parse_obj(seen)
            self.assertEqual(seen["process"]["module_name"], "describe")
            complete = self.wait_events(f, "process.complete", 1)
            self.assertEqual(len(complete), 1)
            self.assertEqual(complete[0]["details"]["instances_in"], 3)
            self.assertEqual(complete[0]["details"]["instances_out"], 3)
            # No container is left behind.
            self.assertEqual(self.podman.containers(f"ferry.data={f.data}"), [])

    def test_two_step_chain_with_settings_per_step(self):
        out = self.folder("out")
        f = self.serve(
            {"first": module({"suffix": "-A"}), "second": module({"suffix": "-X"})},
            {"chain": {"rule": "True", "action": "both", "processing_module": ["first", "second"],
                       "processing_settings": [{}, {"suffix": "-B"}], "target": "out"}},
            {"out": {"target_type": "folder", "folder": out}})
        self.send(f, 2, description="T1")
        task_id = self.wait_task(f, "success", timeout=90)
        files = glob.glob(os.path.join(out, task_id, "*.dcm"))
        self.assertEqual(len(files), 2)
        self.assertEqual({pydicom.dcmread(p).SeriesDescription for p in files}, {"T1-A-B"})
        task = self.task_json(f, "success", task_id)
        self.assertEqual([s["module"] for s in task["ferry"]["process"]["steps"]],
                         ["first", "second"])
        self.assertTrue(os.path.exists(os.path.join(f.data, "success", task_id, "logs",
                                                    "2-second.log")))

    def test_result_json_notification_and_dynamic_routing(self):
        a, b = self.folder("a"), self.folder("b")
        targets = {"a": {"target_type": "folder", "folder": a},
                   "b": {"target_type": "folder", "folder": b}}
        routing = {"__mercure_routing": {"target": "b"},
                   "__mercure_notification": {"text": "2 findings", "requested": True}}
        f = self.serve(
            {"router": module({"description": "R", "result": routing})},
            {"allowed": {"rule": "@SeriesDescription@ == 'ALLOW'", "action": "both",
                         "processing_module": "router", "target": "a",
                         "dynamic_routing": True, "dynamic_routing_allowed_targets": ["b"]},
             "refused": {"rule": "@SeriesDescription@ == 'REFUSE'", "action": "both",
                         "processing_module": "router", "target": "a",
                         "dynamic_routing": True, "dynamic_routing_allowed_targets": ["a"]}},
            targets)
        self.send(f, 1, description="ALLOW")
        wait_for(lambda: glob.glob(os.path.join(b, "*", "*.dcm")), 90, what="output in b")
        self.send(f, 1, description="REFUSE")
        wait_for(lambda: glob.glob(os.path.join(a, "*", "*.dcm")), 90, what="output in a")
        wait_for(lambda: len(self.tasks(f, "success")) == 2, 30, what="both tasks done")
        self.assertEqual(len(glob.glob(os.path.join(b, "*", "*.dcm"))), 1)
        notes = self.events(f, "process.notification")
        self.assertEqual(len(notes), 2)
        self.assertEqual(notes[0]["details"], {"text": "router: 2 findings", "requested": True})
        routed = [e["details"].get("routing", "")
                  for e in self.wait_events(f, "process.complete", 2)]
        self.assertTrue(any("chose the target(s) b" in r for r in routed), routed)
        self.assertTrue(any("does not allow" in r for r in routed), routed)

    def test_failing_modules_go_to_error_with_their_reason_and_can_be_retried(self):
        f = self.serve(
            {"crash": module({"exit_code": 3}),
             "silent": module({"write_nothing": True}),
             "slow": module({"sleep": 60}, timeout=2),
             "ghost": {"docker_tag": "localhost/ferry-no-such-image:1"}},
            {name: {"rule": f"@SeriesDescription@ == '{name}'", "action": "process",
                    "processing_module": name} for name in ("crash", "silent", "slow", "ghost")},
            processor={"workers": 4, "stop_grace": 1})
        for name in ("crash", "silent", "slow", "ghost"):
            self.send(f, 1, description=name)
        wait_for(lambda: len(self.tasks(f, "error")) == 4, 120, what="four failed tasks")
        reasons = {}
        for task_id in self.tasks(f, "error"):
            task = self.task_json(f, "error", task_id)
            self.assertEqual(task["info"]["fail_stage"], "PROCESSING")
            mercure_model.Task.parse_obj({k: v for k, v in task.items() if k != "ferry"})
            failure = task["ferry"]["process"]["failure"]
            reasons[failure["module"]] = failure["reason"]
            # The received image is back in place for a retry.
            self.assertEqual(len(glob.glob(os.path.join(f.data, "error", task_id, "*.dcm"))), 1)
        self.assertIn("exited with code 3", reasons["crash"])
        self.assertIn("failing on purpose", reasons["crash"])
        self.assertIn("wrote no output", reasons["silent"])
        self.assertIn("timeout of 2 s", reasons["slow"])
        self.assertIn("localhost/ferry-no-such-image:1", reasons["ghost"])
        # task.failed is journalled right after the move to error/.
        self.wait_events(f, "task.failed", 4)
        self.assertEqual(self.podman.containers(f"ferry.data={f.data}"), [])

        # A retry runs the module again from the received images (and fails the same way).
        crash = next(t for t in self.tasks(f, "error")
                     if self.task_json(f, "error", t)["ferry"]["process"]["failure"]["module"] ==
                     "crash")
        p = run([FERRY_BIN, "task", "retry", crash, "--config", f.config_path], check=True)
        self.assertIn("processing", p.stdout)
        wait_for(lambda: len(self.events(f, "task.failed")) == 5, 60,
                 what="the retried task to fail again")
        self.assertEqual(len(self.events(f, "process.begin")), 5)

    def test_processor_killed_during_a_job_finishes_the_task_exactly_once(self):
        out = self.folder("out")
        f = self.serve(
            {"slow": module({"sleep": 4, "description": "DONE"})},
            {"slow": {"rule": "True", "action": "both", "processing_module": "slow",
                      "target": "out"}},
            {"out": {"target_type": "folder", "folder": out}})
        self.send(f, 3)
        wait_for(lambda: self.events(f, "process.step_begin"), 60, what="the job to start")
        time.sleep(1)
        [pid] = child_pids(f.proc.pid, b"processor")
        os.kill(pid, signal.SIGKILL)
        task_id = self.wait_task(f, "success", timeout=120)
        files = glob.glob(os.path.join(out, task_id, "*.dcm"))
        self.assertEqual(len(files), 3)
        self.assertEqual({pydicom.dcmread(p).SeriesDescription for p in files}, {"DONE"})
        self.assertEqual(len(self.wait_events(f, "process.complete", 1)), 1)
        self.assertEqual(len(self.events(f, "task.recovered")), 1)
        self.assertIn("left by a processor that stopped", f.log_text())
        self.assertEqual(self.tasks(f, "processing"), [])
        self.assertEqual(os.listdir(os.path.join(f.data, "tmp", "processor")), [])
        self.assertEqual(self.podman.containers(f"ferry.data={f.data}"), [])

    def test_monai_application_package_runs_its_manifest_command(self):
        f = self.serve({"map": {"docker_tag": MAP_IMAGE, "settings": {"description": "MAP"}}},
                       {"p": {"rule": "True", "action": "process", "processing_module": "map"}})
        self.send(f, 1)
        task_id = self.wait_task(f, "success", timeout=60)
        with open(os.path.join(f.data, "success", task_id, "logs", "1-map.log")) as fh:
            log = fh.read()
        self.assertIn("is a MONAI Application Package", log)
        self.assertIn("uid=0", log)  # packages run as root, as mercure runs them
        files = glob.glob(os.path.join(f.data, "success", task_id, "*.dcm"))
        self.assertEqual({pydicom.dcmread(p).SeriesDescription for p in files}, {"MAP"})
        step = self.task_json(f, "success", task_id)["ferry"]["process"]["steps"][0]
        self.assertEqual(step["kind"], "MONAI Application Package")

    def test_suspend_switch_holds_new_jobs(self):
        f = self.serve({"m": module({"description": "X"})},
                       {"p": {"rule": "True", "action": "process", "processing_module": "m"}})
        control = os.path.join(f.data, "control")
        os.makedirs(control, exist_ok=True)
        with open(os.path.join(control, "processing.suspended"), "w") as fh:
            json.dump({"by": "test", "reason": "maintenance"}, fh)
        self.send(f, 1)
        wait_for(lambda: self.tasks(f, "processing"), 30, what="a task in processing/")
        time.sleep(3)
        self.assertEqual(self.events(f, "process.begin"), [])
        self.assertEqual(len(self.tasks(f, "processing")), 1)
        os.remove(os.path.join(control, "processing.suspended"))
        self.wait_task(f, "success", timeout=60)

    def test_four_jobs_run_in_parallel(self):
        f = self.serve({"m": module({"sleep": 3, "description": "P"})},
                       {"p": {"rule": "True", "action": "process", "processing_module": "m"}},
                       processor={"workers": 4})
        for _ in range(4):
            self.send(f, 1)
        wait_for(lambda: len(self.tasks(f, "success")) == 4, 120, what="four processed tasks")
        begins = sorted(e["time"] for e in self.events(f, "process.step_begin"))
        ends = sorted(e["time"] for e in self.events(f, "process.step_complete"))
        # All four started before the first one ended.
        self.assertLess(begins[3], ends[0])

    def test_local_runtime_runs_a_program_on_the_host(self):
        f = self.serve({"local": {"runtime": "local",
                                  "command": ["/usr/bin/python3", MODULE_PY],
                                  "settings": {"description": "LOCAL"}}},
                       {"p": {"rule": "True", "action": "process", "processing_module": "local"}})
        self.send(f, 2)
        task_id = self.wait_task(f, "success", timeout=60)
        files = glob.glob(os.path.join(f.data, "success", task_id, "*.dcm"))
        self.assertEqual(len(files), 2)
        self.assertEqual({pydicom.dcmread(p).SeriesDescription for p in files}, {"LOCAL"})

        # The module's log through the REST API.
        with open(f.config_path) as fh:
            port = json.load(fh)["web"]["port"]
        password = wait_for(lambda: _first_password(f.log_text()), 30, what="admin password")
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        login = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/session",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"})
        opener.open(login, timeout=10)
        with opener.open(f"http://127.0.0.1:{port}/api/v1/tasks/{task_id}/log",
                         timeout=10) as r:
            body = json.load(r)
        self.assertEqual(body["stage"], "success")
        self.assertEqual(body["logs"][0]["module"], "local")
        self.assertIn("wrote 2 file(s)", body["logs"][0]["text"])

        # The bookkeeper loaded the job's events: the task's trace shows the processing.
        def loaded():
            with opener.open(f"http://127.0.0.1:{port}/api/v1/tasks/{task_id}",
                             timeout=10) as r:
                task = json.load(r)
            kinds = [e.get("event_type", e.get("event")) for e in task.get("events", [])]
            return task if "process.complete" in kinds else None
        task = wait_for(loaded, 30, what="the bookkeeper to load the processor's events")
        self.assertEqual(task["task"]["state"], "success")
        kinds = [e.get("event_type", e.get("event")) for e in task["events"]]
        self.assertIn("process.begin", kinds)
        self.assertIn("process.step_complete", kinds)


def _first_password(log):
    import re
    m = re.search(r"created the first account: user 'admin' with password '([^']+)'", log)
    return m.group(1) if m else None


if __name__ == "__main__":
    unittest.main()

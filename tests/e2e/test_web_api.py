"""The data and queue endpoints of ferry's REST API over real HTTP.

`ferry serve` (receiver, router, dispatcher) runs a real pipeline with folder targets; `ferry
bookkeeper` loads its journals into the SQLite database and `ferry web` serves the API from it.
Series are sent with DCMTK's storescu. The tests log in as real accounts created with `ferry
user add` (session cookie + X-CSRF-Token) or use an API token (`ferry user token`).
"""
import glob
import json
import os
import subprocess
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

from ferrytest import (FERRY_BIN, FerryTestCase, add_accounts, make_instance, port_open,
                       run, stop_process_group, storescu, wait_for)

PASSWORD = "correct horse battery staple"


class Api:
    """A small HTTP client for ferry's API: a session cookie and its CSRF token, or a bearer
    token."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.cookie = None
        self.csrf = None
        self.token = None

    def call(self, method, path, body=None, query=None, raw=None, content_type=None):
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = raw
        if data is None and method != "GET":
            data = json.dumps(body if body is not None else {}).encode()
            content_type = "application/json"
        req = urllib.request.Request(url, data=data, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if self.cookie:
            req.add_header("Cookie", self.cookie)
        if self.csrf and method != "GET":
            req.add_header("X-CSRF-Token", self.csrf)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text, headers = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, text, headers = e.code, e.read(), e.headers
        try:
            value = json.loads(text) if text else None
        except ValueError:
            value = text.decode("utf-8", "replace")
        return status, value, headers

    def ok(self, method, path, body=None, query=None, expect=200, **kw):
        status, value, _ = self.call(method, path, body, query, **kw)
        assert status == expect, f"{method} {path} {query or ''}: {status} {value}"
        return value

    def login(self, user, password):
        status, value, headers = self.call("POST", "/api/v1/session",
                                           {"username": user, "password": password})
        assert status == 200, f"login as {user}: {status} {value}"
        self.cookie = headers["Set-Cookie"].split(";")[0]
        self.csrf = value["csrf_token"]
        return self


def multipart(fields):
    """Encodes [(name, filename or None, bytes)] as multipart/form-data."""
    boundary = uuid.uuid4().hex
    out = b""
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        out += (f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                + ("Content-Type: application/dicom\r\n" if filename else "")
                + "\r\n").encode() + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


class WebApiTest(FerryTestCase):

    def start_pipeline(self):
        self.archive = self.file("archive")
        os.makedirs(self.archive)
        self.broken = self.file("broken")
        os.makedirs(self.broken)  # replaced by a file once every process has read the config
        fast = {"series_complete_grace": 0.3, "streaming": False}
        extra = {
            "targets": {"archive": {"target_type": "folder", "folder": self.archive},
                        "broken": {"target_type": "folder", "folder": self.broken}},
            "rules": {
                "to_archive": dict(fast, rule="'ARCH' in @SeriesDescription@",
                                   target="archive"),
                "to_broken": dict(fast, rule="'BROKEN' in @SeriesDescription@",
                                  target="broken"),
                "manual": dict(fast, rule="False", target="archive"),
                # Collects a study until its 'NEVER' series arrives: only an operator
                # completes it.
                "study_wait": dict(fast, rule="'STUDY' in @SeriesDescription@", target="archive",
                                   action_trigger="study",
                                   study_trigger_condition="received_series",
                                   study_trigger_series="'NEVER'"),
            },
            # Series no rule takes wait a minute in incoming/ (time for an operator to act).
            "router": {"series_complete_grace": 60},
            "dispatcher": {"retry": {"initial_delay": 0.2, "max_delay": 0.5,
                                     "max_attempts": 2}},
            "bookkeeper": {"poll_interval_ms": 100},
        }
        self.f = self.ferry(mode="serve", extra=extra).start()
        with open(self.f.config_path) as fh:
            self.web_port = json.load(fh)["web"]["port"]
        # `ferry serve` may run the bookkeeper and the web service itself; start whichever it
        # does not.
        services_json = os.path.join(self.f.data, "run", "services.json")
        wait_for(lambda: os.path.exists(services_json), 15, what="run/services.json")
        with open(services_json) as fh:
            supervised = set(json.load(fh)["services"])
        for service in ("bookkeeper", "web"):
            if service not in supervised:
                self.service(service)
        wait_for(lambda: port_open(self.web_port), 30, what="ferry web to listen")
        add_accounts(self.f.config_path, self.file("password"), PASSWORD,
                     (("olga", "operator"), ("vera", "viewer")))
        p = run([FERRY_BIN, "user", "token", "olga", "--name", "e2e", "--config",
                 self.f.config_path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.token = p.stdout.strip()
        self.api = Api(self.web_port).login("olga", PASSWORD)
        self.viewer = Api(self.web_port).login("vera", PASSWORD)
        # The broken target: a file where its folder should be (a permanent failure).
        os.rmdir(self.broken)
        with open(self.broken, "w") as fh:
            fh.write("not a folder")

    def service(self, name):
        log = open(self.file(f"{name}.log"), "ab")
        proc = subprocess.Popen([FERRY_BIN, name, "--config", self.f.config_path],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.addCleanup(log.close)
        self.addCleanup(stop_process_group, proc)
        return proc

    def send(self, description, patient, accession, count=2):
        uid, files = self.make_series(count, series_description=description, patient=patient,
                                      extra={"AccessionNumber": accession})
        p = storescu(self.f.port, files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return uid, files

    def spool_tasks(self, stage):
        return {os.path.basename(os.path.dirname(p)): p
                for p in glob.glob(os.path.join(self.f.data, stage, "*", "task.json"))}

    def task_of(self, uid, stage, timeout=30):
        """Waits for the task of series `uid` in spool stage `stage`; returns its id."""
        def find():
            for tid, path in self.spool_tasks(stage).items():
                with open(path) as fh:
                    if json.load(fh)["info"]["uid"] == uid:
                        return tid
            return None
        return wait_for(find, timeout, what=f"the task of series {uid} in {stage}/")

    def search(self, **query):
        return self.api.ok("GET", "/api/v1/tasks", query=query)

    def wait_search(self, expect_ids, timeout=30, **query):
        """Polls a task search until it returns exactly `expect_ids` (the bookkeeper loads the
        journals asynchronously)."""
        def match():
            page = self.search(**query)
            ids = sorted(i["task_id"] for i in page["items"])
            return page if ids == sorted(expect_ids) else None
        try:
            return wait_for(match, timeout, interval=0.2, what=f"tasks {expect_ids} for {query}")
        except AssertionError:
            raise AssertionError(f"{query}: got {self.search(**query)}")

    def web_audits(self):
        return [e for e in self.f.events("web") if e["event"].startswith("audit.")]

    def test_search_detail_retry_suspend_and_route_on_a_real_pipeline(self):
        self.start_pipeline()
        uid_a, _ = self.send("ARCH head", "Archive^Anna", "ACC-A")
        uid_b, files_b = self.send("BROKEN knee", "Broken^Bob", "ACC-B")
        task_a = self.task_of(uid_a, "success")
        task_b = self.task_of(uid_b, "error")

        # Search by patient name (case-insensitive substring), accession, rule, target, state.
        self.wait_search([task_a], patient_name="anna")
        self.wait_search([task_b], accession="ACC-B")
        self.wait_search([task_a], rule="to_archive")
        self.wait_search([task_b], target="broken")
        page = self.wait_search([task_b], state="error")
        self.assertEqual(page["items"][0]["patient_name"], "Broken^Bob")
        self.assertEqual(page["items"][0]["targets"], ["broken"])
        self.assertIn("is not a folder", page["items"][0]["last_error"])
        both = self.wait_search([task_a, task_b], patient_name="^")
        self.assertEqual(both["total"], 2)
        self.assertEqual([i["task_id"] for i in both["items"]], [task_b, task_a])  # newest first
        self.assertEqual(self.search(patient_name="' OR '1'='1")["total"], 0)
        self.assertEqual(self.search(limit=1, offset=1)["items"][0]["task_id"], task_a)

        # Task detail: the timeline in order, task.json read live from the spool.
        self.wait_search([task_a], state="success", series_uid=uid_a)  # task.completed loaded
        detail = self.api.ok("GET", f"/api/v1/tasks/{task_a}")
        self.assertEqual(detail["task"]["series_uid"], uid_a)
        self.assertEqual(detail["spool_stage"], "success")
        self.assertEqual(detail["task_json_source"], "spool")
        self.assertEqual(detail["task_json"]["info"]["uid"], uid_a)
        events = [e["event"] for e in detail["events"]]
        self.assertIn("task.created", events)
        self.assertIn("task.completed", events)
        self.assertLess(events.index("task.created"), events.index("task.completed"))
        stamps = [e["ts_us"] for e in detail["events"]]
        self.assertEqual(stamps, sorted(stamps))
        missing = self.api.ok("GET", "/api/v1/tasks/no-such-task", expect=404)
        self.assertIn("no task no-such-task", missing["error"])
        series = self.api.ok("GET", f"/api/v1/series/{uid_a}")
        self.assertEqual([t["task_id"] for t in series["tasks"]], [task_a])

        # Retry: a viewer may not; the operator fixes the target and retries; it is delivered.
        status, _, _ = self.viewer.call("POST", f"/api/v1/tasks/{task_b}/retry", {})
        self.assertEqual(status, 403)
        os.remove(self.broken)
        os.makedirs(self.broken)
        r = self.api.ok("POST", f"/api/v1/tasks/{task_b}/retry")
        self.assertIn("queued again", r["message"])
        self.task_of(uid_b, "success")
        self.assertEqual(len(glob.glob(os.path.join(self.broken, task_b, "*.dcm"))), len(files_b))
        self.wait_search([task_b], accession="ACC-B", state="success")
        again = self.api.ok("POST", f"/api/v1/tasks/{task_b}/retry", expect=409)
        self.assertIn("success/", again["error"])

        # Suspend dispatch: a new series is routed but not sent until dispatch is resumed.
        r = self.api.ok("POST", "/api/v1/queue/dispatch/suspend", {"reason": "PACS upgrade"})
        self.assertTrue(r["suspended"])
        status = self.api.ok("GET", "/api/v1/status")
        self.assertTrue(status["suspended"]["dispatch"]["suspended"])
        self.assertEqual(status["suspended"]["dispatch"]["by"], "olga")
        self.assertLessEqual({"receiver", "router", "dispatcher"}, set(status["services"]))
        self.assertEqual(status["services"]["dispatcher"]["state"], "running")
        uid_c, _ = self.send("ARCH chest", "Chest^Carl", "ACC-C")
        task_c = self.task_of(uid_c, "outgoing")
        with self.assertRaises(AssertionError):
            self.task_of(uid_c, "success", timeout=3)
        self.assertFalse(os.path.exists(os.path.join(self.archive, task_c)))
        self.assertGreaterEqual(self.api.ok("GET", "/api/v1/status")["queues"]["outgoing"], 1)
        self.api.ok("POST", "/api/v1/queue/dispatch/resume")
        self.task_of(uid_c, "success")
        self.assertTrue(os.path.exists(os.path.join(self.archive, task_c, ".complete")))

        # Route with a named rule: a series no rule takes waits in incoming/ until the operator
        # routes it.
        uid_d, _ = self.send("HOLD spine", "Hold^Hanna", "ACC-D")
        wait_for(lambda: os.path.isdir(os.path.join(self.f.incoming(), uid_d)), 10,
                 what="series D in incoming/")
        bad = self.api.ok("POST", f"/api/v1/series/{uid_d}/route", {"rule": "nope"}, expect=400)
        self.assertIn("no enabled rule", bad["error"])
        r = self.api.ok("POST", f"/api/v1/series/{uid_d}/route", {"rule": "manual"})
        self.assertIn("with rule manual", r["message"])
        task_d = self.task_of(uid_d, "success")
        self.wait_search([task_d], rule="manual")
        self.api.ok("POST", f"/api/v1/series/{uid_d}/route", {"rule": "manual"}, expect=404)

        # Every action is in the web journal as audit.<action> with who and from where.
        audits = {e["event"]: e for e in self.web_audits()}
        for action in ("audit.retry", "audit.suspend", "audit.resume", "audit.series_route"):
            self.assertIn(action, audits)
            self.assertEqual(audits[action]["details"]["actor"], "olga")
            self.assertEqual(audits[action]["details"]["address"], "127.0.0.1")
        self.assertEqual(audits["audit.suspend"]["details"]["reason"], "PACS upgrade")
        self.assertEqual(audits["audit.retry"]["task_id"], task_b)

    def test_discard_token_rules_evaluate_and_target_test(self):
        self.start_pipeline()
        uid_b, _ = self.send("BROKEN wrist", "Broken^Bea", "ACC-E")
        task_b = self.task_of(uid_b, "error")

        # An API token works without a session or CSRF token.
        bearer = Api(self.web_port)
        bearer.token = self.token
        r = bearer.ok("POST", f"/api/v1/tasks/{task_b}/discard", {"reason": "sent by mistake"})
        self.assertIn("discard/", r["message"])
        self.assertTrue(os.path.isdir(os.path.join(self.f.data, "discard", task_b)))
        self.assertFalse(os.path.exists(os.path.join(self.f.data, "error", task_b)))
        bearer.ok("POST", f"/api/v1/tasks/{task_b}/discard", expect=409)
        discarded = [e for e in self.f.events("web") if e["event"] == "task.discarded"]
        self.assertEqual(discarded[0]["details"], {"by": "olga", "reason": "sent by mistake"})
        self.wait_search([task_b], state="discarded")

        # Rule evaluation: an uploaded DICOM file gives what `ferry rules eval` prints.
        dcm = self.file("probe.dcm")
        make_instance(dcm, series_description="ARCH probe", patient="Probe^Paul")
        rule = "'ARCH' in @SeriesDescription@ and @PatientSex@ == 'F'"
        cli = run([FERRY_BIN, "rules", "eval", "--rule", rule, "--dicom", dcm, "--explain"])
        with open(dcm, "rb") as fh:
            body, ctype = multipart([("rule", None, rule.encode()), ("file", "probe.dcm",
                                                                     fh.read())])
        r = self.viewer.ok("POST", "/api/v1/rules/evaluate", raw=body, content_type=ctype)
        self.assertEqual(r["output"], cli.stdout)
        self.assertEqual(r["outcome"], "reject")
        r = self.viewer.ok("POST", "/api/v1/rules/evaluate",
                           {"rule_name": "to_archive", "tags": {"SeriesDescription": "ARCH x"}})
        self.assertEqual(r["outcome"], "trigger")

        # Target check, as `ferry targets test`.
        r = self.api.ok("POST", "/api/v1/targets/archive/test")
        self.assertTrue(r["ok"], r)
        r = self.api.ok("POST", "/api/v1/targets/broken/test")
        self.assertFalse(r["ok"])
        self.assertIn("not a folder", r["message"])
        self.api.ok("POST", "/api/v1/targets/nope/test", expect=404)
        self.assertEqual(self.viewer.call("POST", "/api/v1/targets/archive/test", {})[0], 403)

        # A study waiting for a series that never comes: an operator completes it.
        self.api.ok("POST", "/api/v1/studies/1.2.3/complete", expect=404)
        study_uid = "1.2.826.0.1.3680043.8.498.777"
        uid_s, files = self.make_series(2, series_description="STUDY part", patient="Stu^Dy",
                                        study_uid=study_uid)
        p = storescu(self.f.port, files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        wait_for(lambda: glob.glob(os.path.join(self.f.data, "studies", "*", "study.json")), 30,
                 what="the study to wait in studies/")
        self.assertEqual(self.viewer.call("POST", f"/api/v1/studies/{study_uid}/complete",
                                          {})[0], 403)
        r = self.api.ok("POST", f"/api/v1/studies/{study_uid}/complete")
        self.assertEqual(r["rules"], ["study_wait"])
        task_s = self.task_of(study_uid, "success")
        with open(os.path.join(self.f.data, "success", task_s, "task.json")) as fh:
            task = json.load(fh)
        self.assertEqual(task["info"]["uid_type"], "study")
        self.assertEqual(task["ferry"]["complete_reason"], "forced by operator")
        self.assertTrue(glob.glob(os.path.join(self.archive, task_s, "*.dcm")))
        audits = [e for e in self.f.events("web") if e["event"] == "audit.study_complete"]
        self.assertEqual(audits[0]["details"]["object"], f"study/{study_uid}")


if __name__ == "__main__":
    unittest.main()

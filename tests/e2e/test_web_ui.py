"""The web UI in Debian's chromium, driven by playwright-core (web/e2e/browser_test.mjs).

`ferry serve` runs the whole pipeline with folder targets and `ferry web` serves the built UI
(web/dist) at / beside the API. This test sends real series with storescu, waits until the
bookkeeper has loaded them, then runs the browser script, which logs in with the first-start
admin password (and must change it), checks every page against the data sent here, acts on the
queue as an operator, checks that a viewer sees and may call no action, and logs out. Afterwards
this test checks the actions' effects in the spool and the audit journal. Screenshots of each
page go to <build>/web-screenshots/.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import unittest
import urllib.error
import urllib.parse
import urllib.request

import pydicom

from ferrytest import (FERRY_BIN, FerryTestCase, add_accounts, port_open, run, storescu,
                       wait_for)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(ROOT, "web")
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD_RE = re.compile(r"user 'admin' with password '([A-Za-z0-9]+)'")


class WebUiTest(FerryTestCase):

    def setUp(self):
        super().setUp()
        missing = [p for p in (CHROMIUM, os.path.join(WEB, "dist", "index.html"),
                               os.path.join(WEB, "node_modules", "playwright-core"))
                   if not os.path.exists(p)]
        if missing:
            self.fail(f"missing {missing}: run `make build` (scripts/install-deps.sh installs "
                      "chromium, scripts/build-web.sh builds web/dist)")

    def start(self):
        self.archive = self.file("archive")
        self.broken = self.file("broken")
        os.makedirs(self.archive)
        os.makedirs(self.broken)
        fast = {"series_complete_grace": 0.3, "streaming": False}
        extra = {
            "targets": {"archive": {"target_type": "folder", "folder": self.archive},
                        "broken": {"target_type": "folder", "folder": self.broken}},
            "rules": {
                "to_archive": dict(fast, rule="'ARCH' in @SeriesDescription@", target="archive"),
                "to_broken": dict(fast, rule="'BROKEN' in @SeriesDescription@", target="broken"),
                "manual": dict(fast, rule="False", target="archive"),
            },
            # Series no rule takes wait a minute in incoming/, time for the operator to act.
            "router": {"series_complete_grace": 60},
            "dispatcher": {"retry": {"initial_delay": 0.5, "max_delay": 1, "max_attempts": 2}},
            "bookkeeper": {"poll_interval_ms": 100},
        }
        self.f = self.ferry(mode="serve", extra=extra)
        with open(self.f.config_path) as fh:
            cfg = json.load(fh)
        cfg["web"]["static_folder"] = os.path.join(WEB, "dist")
        with open(self.f.config_path, "w") as fh:
            json.dump(cfg, fh, indent=2)
        self.web_port = cfg["web"]["port"]
        self.f.start()
        wait_for(lambda: port_open(self.web_port), 30, what="ferry web to listen")
        add_accounts(self.f.config_path, self.file("password"), PASSWORD,
                     (("olga", "operator"), ("vera", "viewer")))
        # The broken target: a file where its folder should be (a permanent failure).
        os.rmdir(self.broken)
        with open(self.broken, "w") as fh:
            fh.write("not a folder")

    def send(self, description, patient, accession, count=2):
        uid, files = self.make_series(count, series_description=description, patient=patient,
                                      extra={"AccessionNumber": accession})
        p = storescu(self.f.port, files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return uid, files

    def task_in(self, uid, stage, timeout=30):
        def find():
            for path in glob.glob(os.path.join(self.f.data, stage, "*", "task.json")):
                with open(path) as fh:
                    task = json.load(fh)
                if task["info"]["uid"] == uid:
                    return os.path.basename(os.path.dirname(path)), task
            return None
        return wait_for(find, timeout, what=f"the task of series {uid} in {stage}/")

    def api_tasks(self, token, **query):
        url = f"http://127.0.0.1:{self.web_port}/api/v1/tasks?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def test_every_page_and_the_queue_actions_in_chromium(self):
        self.start()
        admin_password = wait_for(lambda: ADMIN_PASSWORD_RE.search(self.f.log_text()), 20,
                                  what="the first-start admin password").group(1)
        uid_a, files_a = self.send("ARCH head", "Archive^Anna", "ACC-A", count=3)
        uid_b, files_b = self.send("BROKEN knee", "Broken^Bob", "ACC-B")
        uid_w, files_w = self.send("WAIT chest", "Waiting^Will", "ACC-W")
        uid_r, files_r = self.send("ROUTE me", "Routed^Rita", "ACC-R")
        archive_task, task_a = self.task_in(uid_a, "success")
        broken_task, _ = self.task_in(uid_b, "error")
        study = str(pydicom.dcmread(files_a[0]).StudyInstanceUID)
        # Wait until the bookkeeper has loaded both tasks, as the pages read the database.
        p = run([FERRY_BIN, "user", "token", "olga", "--name", "ui-test", "--config",
                 self.f.config_path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        token = p.stdout.strip()
        wait_for(lambda: self.api_tasks(token, state="error")["total"] == 1 and
                 self.api_tasks(token, state="success")["total"] == 1, 30,
                 what="the bookkeeper to load the tasks")

        screenshots = os.path.join(os.path.dirname(os.path.abspath(FERRY_BIN)), "web-screenshots")
        shutil.rmtree(screenshots, ignore_errors=True)
        facts = {
            "url": f"http://127.0.0.1:{self.web_port}",
            "chromium": CHROMIUM,
            "admin_password": admin_password,
            "new_admin_password": "a new admin password 1",
            "operator": "olga",
            "viewer": "vera",
            "password": PASSWORD,
            "archive_task": archive_task,
            "archive_series": uid_a,
            "archive_study": study,
            "broken_task": broken_task,
            "waiting_series": uid_w,
            "route_series": uid_r,
            "instances_sent": len(files_a) + len(files_b) + len(files_w) + len(files_r),
            "screenshots": screenshots,
        }
        facts_path = self.file("ui-facts.json")
        with open(facts_path, "w") as fh:
            json.dump(facts, fh)
        env = dict(os.environ, FERRY_UI_TEST=facts_path)
        proc = subprocess.run(["node", os.path.join(WEB, "e2e", "browser_test.mjs")], cwd=WEB,
                              env=env, capture_output=True, text=True, timeout=600)
        print(proc.stdout + proc.stderr)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("[ui] all checks passed", proc.stdout)

        # The actions' effects, seen from outside the browser.
        self.task_in(uid_b, "discard", timeout=10)
        self.assertEqual(glob.glob(os.path.join(self.f.data, "error", "*")), [])
        wait_for(lambda: not os.path.exists(os.path.join(self.f.data, "incoming", uid_w)), 15,
                 what="the forced series to leave incoming/")
        routed, task_r = self.task_in(uid_r, "success")
        self.assertEqual(task_r["info"]["applied_rule"], "manual")
        self.assertTrue(os.listdir(os.path.join(self.archive, routed)))
        audits = [(e["event"], e["details"].get("actor")) for e in self.f.events("web")
                  if e["event"].startswith("audit.")]
        for action in ("suspend", "resume", "retry", "discard", "series_complete",
                       "series_route"):
            self.assertIn((f"audit.{action}", "olga"), audits)
        self.assertIn(("audit.user.created", "admin"), audits)
        self.assertIn(("audit.logout", "admin"), audits)
        self.assertNotIn("vera", [actor for event, actor in audits
                                  if event not in ("audit.login", "audit.logout")])
        # The generated password was used once: it no longer logs in.
        login = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/api/v1/session",
            data=json.dumps({"username": "admin", "password": admin_password}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(login, timeout=10)
        self.assertEqual(refused.exception.code, 401)
        # The built UI is served with its caching headers and the app's routes fall back to it.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/queue", timeout=10) as r:
            self.assertEqual(r.headers["Cache-Control"], "no-cache")
            page = r.read().decode()
        asset = re.search(r'src="(/assets/[^"]+\.js)"', page).group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{asset}", timeout=10) as r:
            self.assertIn("immutable", r.headers["Cache-Control"])
        self.assertEqual(len(os.listdir(screenshots)), 13)


if __name__ == "__main__":
    unittest.main()

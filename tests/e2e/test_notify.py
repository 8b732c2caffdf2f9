"""Notifications: `ferry serve` (receiver, router, dispatcher) with a rule that notifies, and
`ferry notifier` as a process of its own, against a real webhook receiver and a real SMTP server
(aiosmtpd). The webhook gets RECEIVED and COMPLETED with the rendered payload and the SMTP server
the e-mails; a webhook that fails at first still gets each notification exactly once; a target
that refuses for good gives an ERROR notification; STARTTLS with login works; a notifier killed
with SIGKILL and started again loses and repeats nothing."""
import collections
import os
import signal
import subprocess
import time
import unittest

from ferrytest import (FERRY_BIN, FerryTestCase, free_port, stop_process_group, storescu,
                       wait_events, wait_for)
from peers_notify import SmtpServer, WebhookReceiver, make_certificate

FAST_RETRY = {"initial_delay": 0.2, "multiplier": 2, "max_delay": 1, "max_attempts": 20}
PAYLOAD = ('"text": "{{ event }} {{ rule }}", "task": "{{ task_id }}", '
           '"patient": "{{ patient_name }}", "body": "{{ body }}", "details": "{{ details }}"')


class Notifier:
    """`ferry notifier --config PATH` as a process of its own."""

    def __init__(self, config_path, log_path):
        self.config_path = config_path
        self.log_path = log_path
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([FERRY_BIN, "notifier", "--config", self.config_path],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise AssertionError(f"ferry notifier exited with {self.proc.returncode}:\n"
                                 + open(self.log_path, errors="replace").read())
        return self

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()
        self.proc = None

    def stop(self):
        """SIGTERM; returns the exit code."""
        if self.proc is None:
            return None
        code = stop_process_group(self.proc, timeout=20)
        self.log.close()
        self.proc = None
        return code


class NotifyTest(FerryTestCase):

    def setUp(self):
        super().setUp()
        self.hook = WebhookReceiver().start()
        self.addCleanup(self.hook.stop)
        self.notifiers = []

    def tearDown(self):
        for n in self.notifiers:
            if n.proc is not None:
                self.assertEqual(n.stop(), 0, "the notifier must stop cleanly on SIGTERM")
        super().tearDown()

    def smtp(self, **kw):
        server = SmtpServer(**kw).start()
        self.addCleanup(server.stop)
        return server

    def serve(self, smtp, rule=None, smtp_options=None, phi=False):
        out = self.file("out")
        os.makedirs(out, exist_ok=True)
        notify_rule = {"rule": "True", "target": "out",
                       "notification_webhook": self.hook.url,
                       "notification_payload": PAYLOAD,
                       "notification_payload_body": "Rule {{ rule }}: {{ event }}",
                       "notification_email": "ops@example.org, radiology@example.org",
                       "notification_email_body": "Task {{ task_id }}: {{ event }} {{ details }}"
                                                  " for {{ patient_name }}",
                       "notification_trigger_reception": True,
                       "notification_trigger_completion": True,
                       "notification_trigger_error": True}
        notify_rule.update(rule or {})
        notifications = {"smtp": {"host": "127.0.0.1", "port": smtp.port,
                                  "from": "ferry@example.org"},
                         "timeout": 5, "retry": FAST_RETRY, "phi_notifications": phi}
        notifications["smtp"].update(smtp_options or {})
        extra = {"targets": {"out": {"target_type": "folder", "folder": out}},
                 "rules": {"notify": notify_rule},
                 "router": {"series_complete_grace": 0.3},
                 "dispatcher": {"retry": {"initial_delay": 0.3, "max_attempts": 2}},
                 "notifications": notifications,
                 # The test runs (and kills) the notifier itself.
                 "supervisor": {"services": ["receiver", "router", "dispatcher"]}}
        f = self.ferry(mode="serve", extra=extra).start()
        return f

    def notifier(self, f):
        n = Notifier(f.config_path, os.path.join(f.workdir, "notifier.log")).start()
        self.notifiers.append(n)
        return n

    def task_ids(self, f, count, timeout=30):
        created = wait_events(f, "task.created", count, timeout=timeout, service="router")
        return [e["task_id"] for e in created]

    def assert_exactly_once(self, pairs, expected):
        counts = collections.Counter(pairs)
        self.assertEqual(set(counts), set(expected), counts)
        self.assertTrue(all(c == 1 for c in counts.values()), counts)

    def test_webhook_and_email_for_reception_and_completion(self):
        smtp = self.smtp()
        f = self.serve(smtp)
        self.notifier(f)
        self.hook.fail(2)  # the first two calls get HTTP 500
        uid, files = self.make_series(3)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        task = self.task_ids(f, 1)[0]
        wait_events(f, "task.completed", 1, service="dispatcher")
        accepted = self.hook.wait_accepted(2)
        mails = smtp.wait_messages(4)
        time.sleep(1.5)  # anything repeated would arrive now
        accepted = self.hook.accepted()
        self.assert_exactly_once([(b["task"], b["text"]) for b in accepted],
                                 {(task, "RECEIVED notify"), (task, "COMPLETED notify")})
        self.assertEqual(len(self.hook.all_calls()), 4)  # two refused, two accepted
        received = next(b for b in accepted if b["text"].startswith("RECEIVED"))
        self.assertEqual(received, {"text": "RECEIVED notify", "task": task, "patient": "UNKNOWN",
                                    "body": "Rule notify: RECEIVED", "details": ""})
        calls = self.hook.all_calls()
        self.assertEqual(calls[0]["headers"]["Content-Type"], "application/json")
        self.assertEqual(len({c["headers"]["Idempotency-Key"] for c in calls}), 2)

        mails = smtp.received()
        self.assertEqual(len(mails), 4)
        self.assert_exactly_once(
            [(m["to"][0], m["message"]["Subject"]) for m in mails],
            {(to, f"[ferry] Rule notify: {ev}") for to in ("ops@example.org",
                                                           "radiology@example.org")
             for ev in ("RECEIVED", "COMPLETED")})
        for m in mails:
            self.assertEqual(m["from"], "ferry@example.org")
            body = m["message"].get_content()
            self.assertIn(f"Task {task}: ", body)
            self.assertNotIn("Doe", body)  # patient data only with phi_notifications

        events = [e for e in f.events("notifier") if e["event"].startswith("notify.")]
        hooks = [(e["event"], e["details"]["event"]) for e in events
                 if e["details"]["channel"] == "webhook"]
        self.assertIn("notify.retry_scheduled", [h[0] for h in hooks])
        for ev in ("RECEIVED", "COMPLETED"):
            mine = [h[0] for h in hooks if h[1] == ev]
            self.assertEqual(mine[-1], "notify.sent")
            self.assertEqual(mine.count("notify.sent"), 1)
        retry = next(e for e in events if e["event"] == "notify.retry_scheduled")
        self.assertEqual(retry["details"]["status"], 500)
        self.assertEqual(retry["details"]["destination"], f"http://127.0.0.1:{self.hook.port}")
        self.assertEqual(retry["task_id"], task)
        self.assertEqual(os.listdir(os.path.join(f.data, "notify", "pending")), [])

    def test_permanent_dispatch_failure_gives_an_error_notification(self):
        smtp = self.smtp()
        f = self.serve(smtp, phi=True, rule={"notification_trigger_reception": False,
                                             "notification_email": "ops@example.org"})
        self.notifier(f)
        out = self.file("out")
        os.rmdir(out)
        with open(out, "w") as fh:
            fh.write("a file where the target folder should be")
        uid, files = self.make_series(2, patient="Smith^Anna")
        self.assertEqual(storescu(f.port, files).returncode, 0)
        task = self.task_ids(f, 1)[0]
        wait_events(f, "task.failed", 1, service="dispatcher")
        accepted = self.hook.wait_accepted(1)
        mail = smtp.wait_messages(1)[0]
        time.sleep(1.0)
        self.assertEqual(len(self.hook.accepted()), 1)  # reception is switched off
        body = accepted[0]
        self.assertEqual(body["text"], "ERROR notify")
        self.assertEqual(body["task"], task)
        self.assertEqual(body["patient"], "Smith^Anna")  # phi_notifications is on
        self.assertIn("is not a folder", body["details"])
        self.assertEqual(mail["message"]["Subject"], "[ferry] Rule notify: ERROR")
        text = mail["message"].get_content()
        self.assertIn("is not a folder", text)
        self.assertIn("Smith^Anna", text)
        self.assertEqual(len(smtp.received()), 1)

    def test_refusing_webhook_fails_for_good_and_is_kept(self):
        smtp = self.smtp()
        f = self.serve(smtp, rule={"notification_email": "",
                                   "notification_trigger_completion": False})
        self.notifier(f)
        self.hook.fail(100, status=404)
        uid, files = self.make_series(1)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        failed = wait_events(f, "notify.failed", 1, service="notifier")
        self.assertEqual(failed[0]["details"]["status"], 404)
        self.assertTrue(failed[0]["details"]["permanent"])
        self.assertEqual(failed[0]["details"]["attempt"], 1)
        self.assertEqual(len(self.hook.all_calls()), 1)  # a 404 is not retried
        kept = os.listdir(os.path.join(f.data, "notify", "failed"))
        self.assertEqual(kept, [failed[0]["details"]["id"] + ".json"])

    def test_unreachable_webhook_is_retried(self):
        smtp = self.smtp()
        closed = free_port()  # nothing listens there
        f = self.serve(smtp, rule={"notification_email": "",
                                   "notification_webhook": f"http://u:pw@127.0.0.1:{closed}/x?t=1",
                                   "notification_trigger_completion": False})
        self.notifier(f)
        uid, files = self.make_series(1)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        retries = wait_events(f, "notify.retry_scheduled", 2, service="notifier")
        self.assertEqual([r["details"]["attempt"] for r in retries[:2]], [1, 2])
        self.assertNotIn("status", retries[0]["details"])
        self.assertIn("onnect", retries[0]["details"]["error"])
        self.assertEqual(retries[0]["details"]["destination"], f"http://127.0.0.1:{closed}")
        self.assertEqual(len(os.listdir(os.path.join(f.data, "notify", "pending"))), 1)

    def test_starttls_and_login(self):
        cert, key = make_certificate(self.workdir)
        smtp = self.smtp(user="ferry", password="s3cret", cert=cert, key=key)
        f = self.serve(smtp, rule={"notification_webhook": "",
                                   "notification_email": "ops@example.org"},
                       smtp_options={"starttls": True, "user": "ferry", "password": "s3cret",
                                     "ca_cert": cert, "verify_tls": True})
        self.notifier(f)
        uid, files = self.make_series(1)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        mails = smtp.wait_messages(2)
        self.assertTrue(all(m["tls"] for m in mails))
        self.assertEqual(smtp.logins, ["ferry", "ferry"])
        journal = " ".join(str(e) for e in f.events("notifier"))
        self.assertNotIn("s3cret", journal)

    def test_wrong_password_fails_without_retrying(self):
        smtp = self.smtp(user="ferry", password="right")
        f = self.serve(smtp, rule={"notification_webhook": "",
                                   "notification_email": "ops@example.org",
                                   "notification_trigger_completion": False},
                       smtp_options={"user": "ferry", "password": "wrong"})
        self.notifier(f)
        uid, files = self.make_series(1)
        self.assertEqual(storescu(f.port, files).returncode, 0)
        failed = wait_events(f, "notify.failed", 1, service="notifier")
        self.assertTrue(failed[0]["details"]["permanent"])
        self.assertIn("login", failed[0]["details"]["error"])
        self.assertEqual(smtp.received(), [])

    def test_sigkill_and_restart_lose_and_repeat_nothing(self):
        smtp = self.smtp()
        f = self.serve(smtp, rule={"notification_email": "ops@example.org"})
        n = self.notifier(f)
        self.hook.fail(10**6)  # the webhook is down
        uid1, files1 = self.make_series(2)
        self.assertEqual(storescu(f.port, files1).returncode, 0)
        wait_events(f, "task.completed", 1, service="dispatcher")
        smtp.wait_messages(2)
        # Both webhook notifications of the first series are queued and being retried.
        wait_for(lambda: len({e["details"]["event"] for e in f.events("notifier")
                              if e["event"] == "notify.retry_scheduled"}) == 2, 30,
                 what="both webhook notifications retrying")
        n.kill()
        uid2, files2 = self.make_series(2)
        self.assertEqual(storescu(f.port, files2).returncode, 0)
        wait_events(f, "task.completed", 2, service="dispatcher")
        self.hook.fail(0)  # the webhook is back
        self.notifier(f)
        tasks = self.task_ids(f, 2)
        self.hook.wait_accepted(4)
        smtp.wait_messages(4)
        time.sleep(2.0)  # anything repeated would arrive now
        expected = {(t, ev) for t in tasks for ev in ("RECEIVED", "COMPLETED")}
        self.assert_exactly_once([(b["task"], b["text"].split()[0]) for b in self.hook.accepted()],
                                 expected)
        self.assert_exactly_once(
            [(m["message"].get_content().split(":")[0].split()[1],
              m["message"]["Subject"].split()[-1]) for m in smtp.received()], expected)


if __name__ == "__main__":
    unittest.main()

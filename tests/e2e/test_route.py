"""Routing: ferry serve (receiver + router) turns complete series into tasks by rules."""
import glob
import json
import os
import time
import unittest

from pydicom.uid import generate_uid

from ferrytest import FERRY_BIN, FerryTestCase, run, storescu, wait_events, wait_for

RULES = {
    "ct_to_pacs": {"rule": "@Modality@ == 'CT'", "target": "pacs"},
    "age_check": {"rule": "int(@PatientName@) > 3", "target": "research"},
}


def with_targets(workdir, rules):
    """The config sections for `rules`, with a folder target for every target they name. The
    rules send after completion (streaming: false): these tests look at completion."""
    rules = {name: dict({"streaming": False}, **rule) for name, rule in rules.items()}
    targets = {}
    for rule in rules.values():
        names = rule.get("target", [])
        for t in [names] if isinstance(names, str) else names:
            folder = os.path.join(workdir, "targets", t)
            os.makedirs(folder, exist_ok=True)
            targets[t] = {"target_type": "folder", "folder": folder}
    return {"rules": rules, "targets": targets}


class RouteTest(FerryTestCase):
    """Tasks are created in outgoing/ and, once delivered to their folder targets, end in
    success/: the tests look there."""

    def serve(self, rules=None, grace=0.5):
        extra = with_targets(self.workdir, rules or RULES)
        extra["router"] = {"series_complete_grace": grace}
        f = self.ferry(mode="serve", extra=extra)
        return f.start()

    def tasks(self, f, stage):
        out = {}
        for path in glob.glob(os.path.join(f.data, stage, "*", "task.json")):
            with open(path) as fh:
                out[os.path.basename(os.path.dirname(path))] = json.load(fh)
        return out

    def wait_tasks(self, f, stage, count, timeout=20):
        return wait_for(lambda: (lambda t: t if len(t) >= count else None)(self.tasks(f, stage)),
                        timeout, what=f"{count} task(s) in {stage}/")

    def test_matching_series_is_routed_and_other_discarded(self):
        f = self.serve()
        ct_uid, ct_files = self.make_series(3, modality="CT")
        mr_uid, mr_files = self.make_series(2, modality="MR")
        self.assertEqual(storescu(f.port, ct_files).returncode, 0)
        self.assertEqual(storescu(f.port, mr_files).returncode, 0)
        routed = self.wait_tasks(f, "success", 1)
        task_id, task = next(iter(routed.items()))
        self.assertEqual(task["info"]["uid"], ct_uid)
        self.assertEqual(task["info"]["action"], "route")
        self.assertEqual(task["dispatch"]["target_name"], ["pacs"])
        self.assertEqual(task["info"]["mrn"], "P001")
        self.assertEqual(task["info"]["sender_aet"], "STORESCU")
        self.assertEqual(task["ferry"]["complete_reason"], "associations ended")
        folder = os.path.join(f.data, "success", task_id)
        self.assertEqual(len(glob.glob(os.path.join(folder, "*.dcm"))), 3)
        discarded = self.wait_tasks(f, "discard", 1)
        self.assertEqual(next(iter(discarded.values()))["info"]["uid"], mr_uid)
        self.assertFalse(os.path.exists(os.path.join(f.incoming(), ct_uid)))
        wait_events(f, "series.discarded", 1, service="router")
        events = f.events("router")
        kinds = [e["event"] for e in events]
        self.assertEqual(kinds.count("series.complete"), 2)
        self.assertIn("task.created", kinds)
        self.assertIn("series.discarded", kinds)
        classified = [e for e in events if e["event"] == "series.classified"]
        outcomes = {o["rule"]: o["outcome"] for e in classified for o in e["details"]["outcomes"]
                    if e["series_uid"] == mr_uid}
        self.assertEqual(outcomes["ct_to_pacs"], "reject")
        self.assertEqual(f.stop(), 0)

    def test_study_level_rule_with_two_series(self):
        rules = {"brain_study": {"rule": "@Modality@ == 'MR'", "target": "neuro",
                                 "action_trigger": "study",
                                 "study_trigger_condition": "received_series",
                                 "study_trigger_series": "'T1' and 'T2'"}}
        f = self.serve(rules=rules)
        study = generate_uid()
        uid1, files1 = self.make_series(2, modality="MR", study_uid=study,
                                        series_description="Ax T1 MPRAGE")
        uid2, files2 = self.make_series(3, modality="MR", study_uid=study,
                                        series_description="Ax T2 FSE")
        self.assertEqual(storescu(f.port, files1).returncode, 0)
        wait_events(f, "study.series_added", 1, service="router")
        self.assertEqual(self.tasks(f, "success"), {})
        self.assertEqual(storescu(f.port, files2).returncode, 0)
        routed = self.wait_tasks(f, "success", 1)
        task_id, task = next(iter(routed.items()))
        self.assertEqual(task["info"]["uid_type"], "study")
        self.assertEqual(task["info"]["uid"], study)
        self.assertEqual(sorted(task["study"]["received_series_uid"]), sorted([uid1, uid2]))
        self.assertEqual(task["dispatch"]["target_name"], ["neuro"])
        self.assertEqual(len(glob.glob(os.path.join(f.data, "success", task_id, "*.dcm"))), 5)
        self.assertEqual(os.listdir(os.path.join(f.data, "studies")), [])

    def test_rule_with_runtime_error_does_not_trigger_and_is_reported(self):
        f = self.serve()
        uid, files = self.make_series(1, modality="MR", patient="Doe^Jane")
        self.assertEqual(storescu(f.port, files).returncode, 0)
        self.wait_tasks(f, "discard", 1)
        errors = wait_events(f, "rule.error", 1, service="router")
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0]["details"]["rule"], "age_check")
        self.assertEqual(errors[0]["series_uid"], uid)
        self.assertIn("age_check", f.log_text())

    def test_late_arrival_forms_a_follow_up_task(self):
        f = self.serve()
        uid, files = self.make_series(3, modality="CT")
        self.assertEqual(storescu(f.port, files[:2]).returncode, 0)
        first = self.wait_tasks(f, "success", 1)
        first_id = next(iter(first))
        self.assertEqual(storescu(f.port, files[2:]).returncode, 0)
        both = self.wait_tasks(f, "success", 2)
        second_id = next(k for k in both if k != first_id)
        self.assertEqual(both[second_id]["ferry"]["parent_task"], first_id)
        self.assertEqual(len(glob.glob(os.path.join(f.data, "success", second_id, "*.dcm"))), 1)
        follow = wait_events(f, "task.follow_up", 1, service="router")
        self.assertEqual(follow[0]["details"]["parent_task"], first_id)

    def test_series_complete_command_forces_completion(self):
        f = self.serve(grace=600)
        uid, files = self.make_series(2, modality="CT")
        self.assertEqual(storescu(f.port, files).returncode, 0)
        time.sleep(1.0)
        self.assertEqual(self.tasks(f, "success"), {})
        p = run([FERRY_BIN, "series", "complete", uid, "--config", f.config_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        routed = self.wait_tasks(f, "success", 1, timeout=10)
        self.assertEqual(next(iter(routed.values()))["ferry"]["complete_reason"], "forced")
        p = run([FERRY_BIN, "series", "complete", "1.2.3.4", "--config", f.config_path])
        self.assertEqual(p.returncode, 1)
        self.assertIn("not in", p.stderr)

    def test_series_route_applies_the_named_rule_whatever_the_tags(self):
        rules = dict(RULES, research={"rule": "False", "target": "research_pacs"})
        f = self.serve(rules=rules, grace=600)
        uid, files = self.make_series(2, modality="MR")
        self.assertEqual(storescu(f.port, files).returncode, 0)
        p = run([FERRY_BIN, "series", "route", uid, "--rule", "nope", "--config", f.config_path])
        self.assertEqual(p.returncode, 1)
        self.assertIn("no enabled rule", p.stderr)
        p = run([FERRY_BIN, "series", "route", uid, "--rule", "research",
                 "--config", f.config_path])
        self.assertEqual(p.returncode, 0, p.stderr)
        routed = self.wait_tasks(f, "success", 1, timeout=10)
        task = next(iter(routed.values()))
        self.assertEqual(task["dispatch"]["target_name"], ["research_pacs"])
        self.assertEqual(task["info"]["applied_rule"], "research")
        wait_events(f, "series.rule_forced", 1, service="router")

    def test_rules_test_shows_outcomes_and_action(self):
        f = self.ferry(extra=with_targets(self.workdir, RULES))
        _, ct = self.make_series(1, modality="CT")
        _, mr = self.make_series(1, modality="MR")
        p = run([FERRY_BIN, "rules", "test", "--config", f.config_path, ct[0], mr[0]])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertIn("  ct_to_pacs: trigger", lines)
        self.assertIn("  -> route to pacs", lines)
        self.assertTrue(any(l.startswith("  age_check: error") for l in lines), p.stdout)
        self.assertIn("  ct_to_pacs: reject", lines)
        self.assertIn("  -> discard (no rule triggered)", lines)

    def test_broken_rule_is_rejected_with_rule_name_and_column(self):
        path = self.file("broken.json")
        with open(path, "w") as fh:
            json.dump(dict(with_targets(self.workdir,
                                        {"bad": {"rule": "@Modality@ ==", "target": "pacs"}}),
                           data_folder=self.workdir), fh)
        p = run([FERRY_BIN, "config", "check", "--config", path])
        self.assertEqual(p.returncode, 1)
        self.assertIn("$.rules.bad.rule", p.stdout)
        self.assertIn("column", p.stdout)
        p = run([FERRY_BIN, "serve", "--config", path], timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertIn("$.rules.bad.rule", p.stderr)


if __name__ == "__main__":
    unittest.main()

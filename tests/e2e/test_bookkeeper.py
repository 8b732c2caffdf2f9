"""The bookkeeper: `ferry bookkeeper` loads the journals of a running ferry (receiver, router,
dispatcher under `ferry serve`) into SQLite and into a real PostgreSQL 15, and every journal line
is in the database exactly once — also when the bookkeeper is killed or PostgreSQL is stopped in
the middle of the traffic and started again."""
import contextlib
import glob
import json
import os
import sqlite3
import subprocess
import threading
import time
import unittest

from ferrytest import FERRY_BIN, FerryTestCase, stop_process_group, storescu, wait_for
from peers_postgres import PostgresPeer, postgres_available


class BookkeeperProcess:
    """`ferry bookkeeper --config ...` as a process of its own (left out of supervisor.services)."""

    def __init__(self, ferry):
        self.ferry = ferry
        self.log_path = os.path.join(ferry.workdir, "bookkeeper.log")
        self.proc = None
        self._log = None

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([FERRY_BIN, "bookkeeper", "--config", self.ferry.config_path,
                                      "--log-level", "info"],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def stop(self, kill=False):
        if self.proc is None:
            return None
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)
        code = stop_process_group(self.proc, 20)
        self.proc = None
        self._log.close()
        return code

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def journal_lines(data):
    """{file name: complete lines} of every journal file, and {file name: bytes up to the end of
    its last complete line}."""
    lines, ends = {}, {}
    for path in sorted(glob.glob(os.path.join(data, "journal", "*.jsonl"))):
        with open(path, "rb") as f:
            text = f.read()
        end = text.rfind(b"\n") + 1
        lines[os.path.basename(path)] = text[:end].count(b"\n")
        ends[os.path.basename(path)] = end
    return lines, ends


class SqliteDb:
    def __init__(self, path):
        self.path = path

    def query(self, sql):
        if not os.path.exists(self.path):
            return []
        with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as c:
            try:
                return [list(r) for r in c.execute(sql).fetchall()]
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []
                raise

    def scalar(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None


class PgDb:
    def __init__(self, pg):
        self.pg = pg

    def query(self, sql):
        if not self.pg.running():
            return []
        try:
            rows = self.pg.query(sql)
        except AssertionError as e:
            if "does not exist" in str(e):
                return []
            raise
        return rows  # NULL reads as ''; the checks here do not need to tell them apart

    def scalar(self, sql):
        rows = self.query(sql)
        return rows[0][0] if rows else None


class BookkeeperTest(FerryTestCase):

    def serve(self, database=None):
        out = self.file("out")
        os.makedirs(out, exist_ok=True)
        extra = {"targets": {"out": {"target_type": "folder", "folder": out}},
                 "rules": {"all": {"rule": "True", "target": "out"}},
                 "router": {"series_complete_grace": 0.3},
                 "bookkeeper": {"poll_interval_ms": 200, "reconnect_max": 1,
                                "batch_size": 50},
                 # The test runs (and kills) the bookkeeper itself.
                 "supervisor": {"services": ["receiver", "router", "dispatcher"]}}
        if database:
            extra["bookkeeper"]["database"] = database
        f = self.ferry(mode="serve", extra=extra).start()
        keeper = BookkeeperProcess(f).start()
        self.addCleanup(keeper.stop)
        return f, keeper

    def send(self, f, series=1, instances=3):
        uids = []
        for i in range(series):
            uid, files = self.make_series(instances, patient=f"Doe^Patient{i}",
                                          series_description=f"Series {i}")
            self.assertEqual(storescu(f.port, files).returncode, 0)
            uids.append(uid)
        return uids

    def success_tasks(self, f):
        return sorted(os.path.basename(os.path.dirname(p))
                      for p in glob.glob(os.path.join(f.data, "success", "*", "task.json")))

    def assert_exactly_once(self, f, db, timeout=60):
        """Every complete journal line is a row of task_events or system_events, once; every
        file's offset is the end of its last complete line."""
        def loaded():
            lines, ends = journal_lines(f.data)
            rows = db.scalar("SELECT (SELECT COUNT(*) FROM task_events) + "
                             "(SELECT COUNT(*) FROM system_events)")
            offsets = {r[0]: int(r[1]) for r in
                       db.query("SELECT file, offset_bytes FROM journal_offsets")}
            return (rows is not None and int(rows) == sum(lines.values())
                    and offsets == ends, (rows, sum(lines.values()), offsets, ends))
        wait_for(lambda: loaded()[0], timeout, interval=0.2, what="the journals to be loaded")
        time.sleep(1.0)  # nothing is loaded twice later either
        ok, detail = loaded()
        self.assertTrue(ok, f"rows, lines, offsets, ends: {detail}")
        per_service = {}
        for path in glob.glob(os.path.join(f.data, "journal", "*.jsonl")):
            with open(path, "rb") as fh:
                for line in fh.read().split(b"\n"):
                    if line.strip():
                        e = json.loads(line)
                        per_service[e["service"]] = per_service.get(e["service"], 0) + 1
        counted = {r[0]: int(float(r[1])) for r in db.query(
            "SELECT labels, value FROM counters WHERE name = 'ferry_journal_events_total'")}
        self.assertEqual(counted, {f'{{service="{s}"}}': n for s, n in per_service.items()})

    def check_series_and_tasks(self, f, db, uids, instances):
        tasks = self.success_tasks(f)
        self.assertEqual(len(tasks), len(uids))
        wait_for(lambda: int(db.scalar("SELECT COUNT(*) FROM tasks WHERE state = 'success'") or 0)
                 == len(uids), 30, what="successful tasks in the database")
        for uid in uids:
            row = db.query("SELECT patient_name, modality, series_description, state, instances, "
                           f"sender_aet, receiver_aet FROM series WHERE series_uid = '{uid}'")
            self.assertEqual(len(row), 1, uid)
            name, modality, description, state, count, sender, receiver = row[0]
            self.assertTrue(name.startswith("Doe^Patient"))
            self.assertEqual(modality, "CT")
            self.assertTrue(description.startswith("Series "))
            self.assertEqual(state, "complete")
            self.assertEqual(int(count), instances)
            self.assertEqual((sender, receiver), ("STORESCU", "FERRY"))
        rows = db.query("SELECT task_id, series_uid, action, state, attempts, targets, "
                        "task_json IS NOT NULL FROM tasks ORDER BY task_id")
        self.assertEqual(sorted(r[0] for r in rows), tasks)
        for task_id, uid, action, state, attempts, targets, snapshot in rows:
            self.assertIn(uid, uids)
            self.assertEqual((action, state, int(attempts)), ("route", "success", 1))
            self.assertEqual(json.loads(targets), ["out"])
            self.assertIn(str(snapshot).lower(), ("1", "t", "true"))
        self.assertEqual(int(db.scalar("SELECT COUNT(*) FROM task_targets WHERE target = 'out'")),
                         len(uids))
        counters = {(r[0], r[1]): float(r[2])
                    for r in db.query("SELECT name, labels, value FROM counters")}
        self.assertEqual(counters[("ferry_instances_received_total", "")],
                         len(uids) * instances)
        self.assertEqual(counters[("ferry_series_received_total", "")], len(uids))
        self.assertEqual(counters[("ferry_tasks_finished_total", '{state="success"}')], len(uids))
        self.assertEqual(counters[("ferry_dispatch_instances_total", '{target="out"}')],
                         len(uids) * instances)
        self.assertEqual(counters[("ferry_series_latency_seconds_count", "")], len(uids))
        self.assertEqual(counters[("ferry_series_latency_seconds_bucket", '{le="+Inf"}')],
                         len(uids))

    def test_sqlite_series_tasks_counters_and_a_killed_bookkeeper(self):
        f, keeper = self.serve()
        db = SqliteDb(os.path.join(f.data, "ferry.db"))
        uids = self.send(f, series=2)
        wait_for(lambda: len(self.success_tasks(f)) == 2, 30, what="2 delivered tasks")
        self.assert_exactly_once(f, db)
        # Killed mid-way and started again: it resumes at the stored offsets.
        keeper.stop(kill=True)
        uids += self.send(f, series=2)
        wait_for(lambda: len(self.success_tasks(f)) == 4, 30, what="4 delivered tasks")
        keeper.start()
        self.assert_exactly_once(f, db)
        self.check_series_and_tasks(f, db, uids, 3)
        self.assertEqual(keeper.stop(), 0)
        events = [r[0] for r in db.query("SELECT event FROM system_events WHERE service = "
                                         "'bookkeeper'")]
        self.assertIn("service.started", events)

    @unittest.skipUnless(postgres_available(), "PostgreSQL 15 server binaries not installed")
    def test_postgres_stopped_during_traffic_loses_and_duplicates_nothing(self):
        with PostgresPeer(self.workdir) as pg:
            db = PgDb(pg)
            f, keeper = self.serve(database=pg.uri)
            uids = self.send(f, series=1)
            wait_for(lambda: int(db.scalar("SELECT COUNT(*) FROM tasks WHERE state = 'success'")
                                 or 0) == 1, 30, what="the first task in PostgreSQL")
            # Traffic in the background, series after series, while the database goes away
            # and comes back.
            sent, errors = [], []
            stop_traffic = threading.Event()

            def traffic():
                try:
                    i = 0
                    while not stop_traffic.is_set():
                        uid, files = self.make_series(3, patient=f"Doe^Patient{i}",
                                                      series_description=f"Series {i}")
                        self.assertEqual(storescu(f.port, files).returncode, 0)
                        sent.append(uid)
                        i += 1
                except Exception as e:  # reported below
                    errors.append(e)
            t = threading.Thread(target=traffic)
            t.start()
            try:
                wait_for(lambda: len(sent) >= 1, 60, what="traffic")
                pg.stop()
                wait_for(lambda: "unreachable" in keeper.log_text(), 30,
                         what="the bookkeeper to notice the outage")
                # The other services carry on: series arrive and are delivered meanwhile.
                delivered = len(self.success_tasks(f))
                wait_for(lambda: len(self.success_tasks(f)) >= delivered + 3, 60,
                         what="deliveries during the outage")
                pg.start()
                at_restart = len(sent)
                wait_for(lambda: len(sent) >= at_restart + 2, 60, what="traffic after restart")
            finally:
                stop_traffic.set()
                t.join(timeout=120)
            self.assertFalse(t.is_alive())
            self.assertEqual(errors, [])
            uids += sent
            wait_for(lambda: len(self.success_tasks(f)) == len(uids), 60,
                     what="every task delivered")
            self.assert_exactly_once(f, db)
            self.check_series_and_tasks(f, db, uids, 3)
            log = keeper.log_text()
            if os.environ.get("FERRY_E2E_SHOW_LOGS"):
                print(log)
            self.assertEqual(log.count("unreachable"), 1, log)
            self.assertIn("events wait in the journal", log)
            self.assertEqual(log.count("reachable again"), 1, log)
            events = [r[0] for r in db.query("SELECT event FROM system_events WHERE service = "
                                             "'bookkeeper'")]
            self.assertIn("database.unreachable", events)
            self.assertIn("database.reachable", events)
            self.assertEqual(keeper.stop(), 0)


if __name__ == "__main__":
    unittest.main()

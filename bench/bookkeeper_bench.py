#!/usr/bin/python3
"""Benchmark of the bookkeeper: how far the database trails the event journals under the route
workload, with SQLite and with PostgreSQL.

    /usr/bin/python3 bench/bookkeeper_bench.py --ferry build/ferry [--quick]

For each database (--databases sqlite,postgres) and workload (--workloads ct,many) a fresh
`ferry serve` (receiver + router + dispatcher, one rule routing everything to a DCMTK storescp)
runs next to `ferry bookkeeper --config ...` (a process of its own; the config leaves it out
of `supervisor.services`).
storescu sends the workload; meanwhile a sampler looks every --interval seconds at

  * bytes behind: the size of every journal file minus its loaded offset (journal_offsets);
  * event lag: rows that appeared in task_events/system_events since the last sample, each with
    (sample time - the event's journal time). This is an upper bound: it includes up to one
    sampling interval (and the query's own time).

Workloads: ct, 500 CT instances of 512x512 16-bit in one series and one association (the route
benchmark's); many, 100 series of 4 small (64x64) CT instances, each series its own association
(many journal events per instance). --quick: 100 CT instances; 25 series.

At the end it waits until every journal line is loaded, checks that the number of event rows
equals the number of journal lines, and prints max / median of both lags per run. Exit code 0
unless something broke.
"""
import argparse
import contextlib
import glob
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import ferrytest  # noqa: E402
from peers_dicom import StoreScp  # noqa: E402
from peers_postgres import PostgresPeer, postgres_available  # noqa: E402
import route_bench  # noqa: E402  (the workload generator)

WORKLOADS = {"ct": ("CT", 1, 500, 512, 512), "many": ("CT", 100, 4, 64, 64)}
WORKLOADS_QUICK = {"ct": ("CT", 1, 100, 512, 512), "many": ("CT", 25, 4, 64, 64)}


class SqliteRows:
    def __init__(self, path):
        self.path = path

    def query(self, sql):
        if not os.path.exists(self.path):
            return []
        with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as c:
            try:
                return [list(r) for r in c.execute(sql).fetchall()]
            except sqlite3.OperationalError:
                return []  # not migrated yet, or busy


class PostgresRows:
    def __init__(self, pg):
        self.pg = pg

    def query(self, sql):
        try:
            return self.pg.query(sql)
        except AssertionError:
            return []  # not migrated yet


class Sampler(threading.Thread):
    def __init__(self, data, db, interval):
        super().__init__(daemon=True)
        self.data, self.db, self.interval = data, db, interval
        self.stop_flag = threading.Event()
        self.bytes_behind = []   # one value per sample
        self.event_lag = []      # one value per loaded event
        self.last_ids = {"task_events": 0, "system_events": 0}
        self.lock = threading.Lock()  # the final wait samples from the main thread too

    def journal_bytes(self):
        total = 0
        for path in glob.glob(os.path.join(self.data, "journal", "*.jsonl")):
            with contextlib.suppress(OSError):
                total += os.path.getsize(path)
        return total

    def sample(self):
        with self.lock:
            return self._sample()

    def _sample(self):
        total = self.journal_bytes()
        rows = self.db.query("SELECT COALESCE(SUM(offset_bytes), 0) FROM journal_offsets")
        loaded = int(rows[0][0]) if rows else 0
        new = self.db.query(
            f"SELECT 'task_events', id, ts_us FROM task_events WHERE id > "
            f"{self.last_ids['task_events']} UNION ALL SELECT 'system_events', id, ts_us FROM "
            f"system_events WHERE id > {self.last_ids['system_events']}")
        now = time.time()
        for table, row_id, ts_us in new:
            self.last_ids[table] = max(self.last_ids[table], int(row_id))
            self.event_lag.append(now - int(ts_us) / 1e6)
        self.bytes_behind.append(max(0, total - loaded))
        return total - loaded

    def run(self):
        while not self.stop_flag.is_set():
            self.sample()
            time.sleep(self.interval)


def journal_line_count(data):
    n = 0
    for path in glob.glob(os.path.join(data, "journal", "*.jsonl")):
        with open(path, "rb") as f:
            n += f.read().count(b"\n")
    return n


def run_once(db_kind, workload, spec, args, tmp):
    run_dir = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{db_kind}-{workload}-"))
    files_dir = run_dir / "files"
    files, _, total_bytes = route_bench.generate_workload(spec, files_dir)
    series_dirs = sorted(p for p in files_dir.iterdir() if p.is_dir())
    dest = StoreScp(str(run_dir), verbose=False).start()
    pg = None
    try:
        extra = {"targets": {"dest": {"target_type": "dicom", "ip": "127.0.0.1",
                                      "port": dest.port, "aet_target": dest.aet}},
                 "rules": {"all": {"rule": "True", "target": "dest"}},
                 "router": {"series_complete_grace": 1.0},
                 "bookkeeper": {"batch_size": args.batch_size},
                 # The bookkeeper under test runs as its own process (below).
                 "supervisor": {"services": ["receiver", "router", "dispatcher"]}}
        if db_kind == "postgres":
            pg = PostgresPeer(str(run_dir), fsync=True).start()
            extra["bookkeeper"]["database"] = pg.uri
            db = PostgresRows(pg)
        ferrytest.FERRY_BIN = str(args.ferry)
        os.makedirs(run_dir / "ferry", exist_ok=True)
        ferry = ferrytest.Ferry(str(run_dir / "ferry"), mode="serve", extra=extra)
        ferry.start()
        if db_kind == "sqlite":
            db = SqliteRows(os.path.join(ferry.data, "ferry.db"))
        keeper_log = open(run_dir / "bookkeeper.log", "ab")
        keeper = subprocess.Popen([str(args.ferry), "bookkeeper", "--config", ferry.config_path],
                                  stdout=keeper_log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            ferrytest.wait_for(lambda: db.query("SELECT COUNT(*) FROM journal_offsets"), 30,
                               what="the bookkeeper to load its first lines")
            sampler = Sampler(ferry.data, db, args.interval)
            sampler.start()
            t0 = time.monotonic()
            for folder in series_dirs:
                out = ferrytest.storescu(ferry.port, sorted(str(p) for p in folder.glob("*.dcm")))
                if out.returncode != 0:
                    raise RuntimeError(f"storescu failed: {out.stderr[-2000:]}")
            sent_s = time.monotonic() - t0
            want = len(series_dirs)
            ferrytest.wait_for(lambda: len(glob.glob(os.path.join(ferry.data, "success", "*",
                                                                  "task.json"))) >= want,
                               300, what=f"{want} tasks in success/")
            done_s = time.monotonic() - t0
            ferrytest.wait_for(lambda: sampler.sample() == 0 and
                               journal_line_count(ferry.data) == sum(
                                   int(r[0]) for r in db.query(
                                       "SELECT (SELECT COUNT(*) FROM task_events) + "
                                       "(SELECT COUNT(*) FROM system_events)")),
                               120, interval=args.interval, what="the journals to be loaded")
            sampler.stop_flag.set()
            sampler.join(timeout=10)
            lines = journal_line_count(ferry.data)
        finally:
            ferrytest.stop_process_group(keeper, 20)
            keeper_log.close()
            with contextlib.suppress(Exception):
                ferry.stop(timeout=30)
            ferry.kill()
    finally:
        if pg is not None:
            pg.stop()
        dest.stop()
    lag = sampler.event_lag
    behind = sampler.bytes_behind
    return {"database": db_kind, "workload": workload, "instances": len(files),
            "series": len(series_dirs), "mb": total_bytes / 1e6, "sent_s": sent_s,
            "done_s": done_s, "journal_lines": lines, "samples": len(behind),
            "bytes_behind_max": max(behind), "bytes_behind_median": statistics.median(behind),
            "lag_s_max": max(lag) if lag else None,
            "lag_s_median": statistics.median(lag) if lag else None, "events": len(lag)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferry", default=str(REPO / "build" / "ferry"))
    ap.add_argument("--databases", default="sqlite,postgres")
    ap.add_argument("--workloads", default="ct,many")
    ap.add_argument("--interval", type=float, default=0.05, help="sampling interval, seconds")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)
    workloads = WORKLOADS_QUICK if args.quick else WORKLOADS
    results = []
    with tempfile.TemporaryDirectory(prefix="ferry-bookkeeper-bench-") as tmp:
        os.chmod(tmp, 0o755)
        for db_kind in args.databases.split(","):
            if db_kind == "postgres" and not postgres_available():
                print("PostgreSQL 15 is not installed: skipping postgres", file=sys.stderr)
                continue
            for w in args.workloads.split(","):
                r = run_once(db_kind, w, workloads[w], args, tmp)
                results.append(r)
                print(f"{db_kind:8} {w:5} {r['instances']:4} instances in {r['series']:3} "
                      f"series ({r['mb']:.0f} MB): sent in {r['sent_s']:.1f} s, tasks done "
                      f"after {r['done_s']:.1f} s; {r['journal_lines']} journal lines")
                print(f"{'':15}bytes behind max {r['bytes_behind_max']} median "
                      f"{r['bytes_behind_median']:.0f} ({r['samples']} samples every "
                      f"{args.interval * 1000:.0f} ms); event lag max {r['lag_s_max']:.3f} s "
                      f"median {r['lag_s_median']:.3f} s ({r['events']} events)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Benchmark of the archive endpoints on a large SQLite database: how long `ferry web` takes to
answer the searches the web UI's archive and trace pages make.

    /usr/bin/python3 bench/archive_bench.py --ferry build/ferry [--tasks 1000000] [--runs 200]
        [--database sqlite|postgres]

It creates a data folder (and with --database postgres a throw-away PostgreSQL 15 cluster on a
free port, tests/e2e/peers_postgres.py), lets `ferry user add` create the schema, fills `tasks`,
`task_targets`, `series` (one per task) and `task_events` (three events per task) with --tasks
generated tasks spread
over 30 days (2,000 patient names, one accession and study per task), runs ANALYZE (so that
SQLite plans with statistics, the harder case for some queries), starts `ferry web` on a
free loopback port and times --runs requests of each kind over HTTP with an API token (the
whole request as a client sees it, on one connection at a time):

  patient_name   GET /api/v1/tasks?patient_name_prefix=<a name's first 7 letters> (about
                 5,000 matching tasks)
  name_contains  GET /api/v1/tasks?patient_name=<the same letters> (substring: a scan)
  accession      GET /api/v1/tasks?accession=<one>
  study_uid      GET /api/v1/tasks?study_uid=<one>
  time_range     GET /api/v1/tasks?from=..&to=..   (a random hour)
  trace          GET /api/v1/tasks/<id>            (row, events, follow-ups, task.json)
  trace_series   GET /api/v1/series/<uid>          (the trace page's second call)

and prints p50, p95 and max per kind.
"""
import argparse
import csv
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import ferrytest  # noqa: E402

T0 = 1_790_000_000 * 1_000_000  # microseconds
SPAN = 30 * 86400 * 1_000_000
LAST = ["SMITH", "MUELLER", "ROSSI", "GARCIA", "NOVAK", "KOWALSKI", "JANSEN", "DUBOIS",
        "SILVA", "BERG"]


def names():
    out = []
    for i in range(2000):
        out.append(f"{LAST[i % len(LAST)]}{i:04d}^PAT")
    return out


TASK_COLS = ("task_id, series_uid, study_uid, action, rule, targets, state, stage, priority,"
             " patient_name, patient_id, accession_number, created_us, updated_us, completed_us,"
             " attempts, task_json")
SERIES_COLS = ("series_uid, study_uid, patient_name, patient_id, accession_number, modality,"
               " first_seen_us, complete_us, instances, state, rule")
EVENT_COLS = "ts_us, time, service, pid, event, task_id, series_uid, details"


def rows(count, batch=20000):
    """Yields (tasks, task_targets, series, task_events) row batches of the generated data."""
    pats = names()
    batch_t, batch_tt, batch_e, batch_s = [], [], [], []
    for i in range(count):
        tid = f"task-{i:08d}"
        created = T0 + (SPAN * i) // count
        name = pats[i % len(pats)]
        state = "error" if i % 50 == 0 else "success"
        batch_t.append((tid, f"1.2.826.0.1.{i}.1", f"1.2.826.0.1.{i}", "route", "ct",
                        '["archive"]', state, state, "normal", name, f"PID{i % 2000:05d}",
                        f"ACC{i:08d}", created, created + 2_000_000, created + 2_000_000, 1,
                        json.dumps({"id": tid, "info": {"uid": f"1.2.826.0.1.{i}.1"}})))
        batch_tt.append((tid, "archive"))
        batch_s.append((f"1.2.826.0.1.{i}.1", f"1.2.826.0.1.{i}", name, f"PID{i % 2000:05d}",
                        f"ACC{i:08d}", "CT", created - 3_000_000, created, 3, "routed", "ct"))
        for k, ev in enumerate(("task.created", "dispatch.begin", "task.completed")):
            ts = created + k * 1_000_000
            batch_e.append((ts, "", "dispatcher", 1, ev, tid, f"1.2.826.0.1.{i}.1",
                            '{"target":"archive"}'))
        if len(batch_t) >= batch or i == count - 1:
            yield batch_t, batch_tt, batch_s, batch_e
            batch_t, batch_tt, batch_e, batch_s = [], [], [], []


def fill_sqlite(db_path, count):
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    start = time.time()
    for t, tt, se, ev in rows(count):
        db.executemany(f"INSERT INTO tasks ({TASK_COLS}) VALUES ({','.join('?' * 17)})", t)
        db.executemany("INSERT INTO task_targets (task_id, target) VALUES (?,?)", tt)
        db.executemany(f"INSERT INTO series ({SERIES_COLS}) VALUES ({','.join('?' * 11)})", se)
        db.executemany(f"INSERT INTO task_events ({EVENT_COLS}) VALUES ({','.join('?' * 8)})",
                       ev)
        db.commit()
    db.execute("ANALYZE")
    db.commit()
    db.close()
    return time.time() - start


def fill_postgres(pg, work, count):
    """CSV files loaded with psql's \\copy, then VACUUM ANALYZE: the state autovacuum keeps a
    running database in (statistics, and the visibility map that lets PostgreSQL count a
    prefix's matches from the index alone)."""
    start = time.time()
    files = {name: os.path.join(work, f"{name}.csv") for name in
             ("tasks", "task_targets", "series", "task_events")}
    handles = {name: open(path, "w", newline="") for name, path in files.items()}
    # Strings quoted: an empty string stays one (an unquoted empty field would be NULL).
    writers = {name: csv.writer(h, quoting=csv.QUOTE_NONNUMERIC) for name, h in handles.items()}
    for t, tt, se, ev in rows(count):
        writers["tasks"].writerows(t)
        writers["task_targets"].writerows(tt)
        writers["series"].writerows(se)
        writers["task_events"].writerows(ev)
    for h in handles.values():
        h.close()
    cols = {"tasks": TASK_COLS, "task_targets": "task_id, target", "series": SERIES_COLS,
            "task_events": EVENT_COLS}
    for name, path in files.items():
        subprocess.run(pg.psql_command() +
                       ["-c", f"\\copy {name} ({cols[name]}) FROM '{path}' CSV"],
                       check=True, capture_output=True, timeout=1800)
        os.remove(path)
    pg.query("VACUUM ANALYZE", timeout=1800)
    return time.time() - start


def timed(url, token, runs_of):
    out = []
    for path in runs_of:
        req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
            assert r.status == 200, body
        out.append((time.perf_counter() - t) * 1000)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferry", default=str(REPO / "build" / "ferry"))
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = ap.parse_args()
    rng = random.Random(13)
    work = tempfile.mkdtemp(prefix="ferry-archive-bench-")
    data = os.path.join(work, "data")
    port = ferrytest.free_port()
    config = os.path.join(work, "ferry.json")
    pg = None
    cfg = {"data_folder": data, "web": {"host": "127.0.0.1", "port": port}}
    if args.database == "postgres":
        from peers_postgres import PostgresPeer  # noqa: E402
        pg = PostgresPeer(work).start()
        cfg["bookkeeper"] = {"database": pg.uri}
    with open(config, "w") as f:
        json.dump(cfg, f)
    os.makedirs(data)
    p = subprocess.run([args.ferry, "user", "add", "bench", "--role", "viewer", "--password-file",
                        "/dev/stdin", "--config", config], input="bench password 1",
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([args.ferry, "user", "token", "bench", "--name", "bench", "--config",
                        config], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    token = p.stdout.strip()
    if pg is not None:
        took = fill_postgres(pg, work, args.tasks)
    else:
        took = fill_sqlite(os.path.join(data, "ferry.db"), args.tasks)
    print(f"filled {args.tasks} tasks, {3 * args.tasks} events in {took:.0f} s")
    web = subprocess.Popen([args.ferry, "web", "--config", config], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        ferrytest.wait_for(lambda: ferrytest.port_open(port), 30, what="ferry web")
        url = f"http://127.0.0.1:{port}"
        pats = names()
        n = args.tasks
        kinds = {
            "patient_name": [f"/api/v1/tasks?patient_name_prefix={rng.choice(pats)[:7]}"
                             for _ in range(args.runs)],
            "name_contains": [f"/api/v1/tasks?patient_name={rng.choice(pats)[:7]}"
                              for _ in range(args.runs)],
            "accession": [f"/api/v1/tasks?accession=ACC{rng.randrange(n):08d}"
                          for _ in range(args.runs)],
            "study_uid": [f"/api/v1/tasks?study_uid=1.2.826.0.1.{rng.randrange(n)}"
                          for _ in range(args.runs)],
            "time_range": [],
            "trace": [f"/api/v1/tasks/task-{rng.randrange(n):08d}" for _ in range(args.runs)],
            "trace_series": [f"/api/v1/series/1.2.826.0.1.{rng.randrange(n)}.1"
                             for _ in range(args.runs)],
        }
        for _ in range(args.runs):
            start = (T0 + rng.randrange(SPAN - 3_600_000_000)) // 1_000_000
            kinds["time_range"].append(
                "/api/v1/tasks?" + urllib.parse.urlencode({"from": start, "to": start + 3600}))
        timed(url, token, kinds["trace"][:5])  # warm up the connection pool and caches
        print(f"{'query':14} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for kind, paths in kinds.items():
            ms = sorted(timed(url, token, paths))
            p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
            print(f"{kind:14} {statistics.median(ms):8.1f} {p95:8.1f} {ms[-1]:8.1f}")
    finally:
        web.terminate()
        web.wait(timeout=30)
        if pg is not None:
            pg.stop()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

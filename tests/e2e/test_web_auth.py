"""`ferry web`: accounts and security over real HTTP, with SQLite and with PostgreSQL.

Each test starts `ferry web --config` on a free loopback port with an empty database and talks to
it with http.client: the first-start admin password from the log, login backoff, CSRF, roles,
session expiry, API tokens, that nothing but /healthz and login answers without authentication
(checked for every operation of the OpenAPI document), config validation and writing, /metrics,
and `ferry user`.
"""
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import tempfile
import time
import unittest

from ferrytest import FERRY_BIN, free_port, port_open, wait_for
from peers_postgres import PostgresPeer, postgres_available

SESSION_TIMEOUT_S = 2
ADMIN_PASSWORD_RE = re.compile(r"user 'admin' with password '([A-Za-z0-9]+)'")
METRIC_LINE_RE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
    r'(-?[0-9.e+-]+|NaN|[+-]Inf)$')


class Http:
    """A tiny HTTP client that keeps the session cookie, like a browser would."""

    def __init__(self, port, tls=False):
        self.port = port
        self.tls = tls
        self.cookie = None
        self.csrf = None
        self.token = None

    def request(self, method, path, body=None, headers=None, csrf=True, raw=False):
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # a self-signed test certificate
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                               context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if self.cookie:
            h["Cookie"] = self.cookie
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if csrf and self.csrf and method in ("POST", "PUT", "PATCH", "DELETE"):
            h["X-CSRF-Token"] = self.csrf
        data = None
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8")
            cookie = resp.getheader("Set-Cookie")
            if cookie and cookie.startswith("ferry_session="):
                value = cookie.split(";", 1)[0]
                self.cookie = None if value == "ferry_session=" else value
            if raw or not text:
                return resp.status, resp, text
            try:
                return resp.status, resp, json.loads(text)
            except ValueError:
                return resp.status, resp, text
        finally:
            conn.close()

    def login(self, username, password):
        status, resp, body = self.request("POST", "/api/v1/session",
                                          {"username": username, "password": password})
        if status == 200:
            self.csrf = body["csrf_token"]
        return status, resp, body


class WebServiceCase:
    """Starts and stops `ferry web` in a temporary folder; subclasses choose the database
    (database_uri)."""

    def database_uri(self):
        raise NotImplementedError

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="ferry-web-")
        self.data = os.path.join(self.workdir, "data")
        os.makedirs(self.data)
        self.port = free_port()
        self.config_path = os.path.join(self.workdir, "ferry.json")
        self.log_path = os.path.join(self.workdir, "web.log")
        cfg = {"data_folder": self.data,
               "web": {"host": "127.0.0.1", "port": self.port,
                       "session_timeout": SESSION_TIMEOUT_S, "threads": 4}}
        uri = self.database_uri()
        self.database_uri_used = uri
        if uri:
            cfg["bookkeeper"] = {"database": uri}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.proc = None

    def tearDown(self):
        self.stop_web()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------

    def start_web(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([FERRY_BIN, "web", "--config", self.config_path],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, 30,
                 what="ferry web to listen")
        self.assertIsNone(self.proc.poll(), self.log())

    def stop_web(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                raise AssertionError("ferry web did not stop on SIGTERM within 15 s")
            self.assertEqual(code, 0, self.log())
        self.proc = None

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def db_exec(self, sql):
        """Runs one statement on the service's database (SQLite file or PostgreSQL)."""
        uri = self.database_uri_used
        if not uri:
            with sqlite3.connect(os.path.join(self.data, "ferry.db")) as db:
                db.execute(sql)
        else:
            self.pg.query(sql, db=uri.rsplit("/", 1)[1])

    def admin_password(self):
        m = wait_for(lambda: ADMIN_PASSWORD_RE.search(self.log()), 15,
                     what="the first-start admin password in the log")
        return m.group(1)

    def admin(self):
        c = Http(self.port)
        status, _, body = c.login("admin", self.admin_password())
        self.assertEqual(status, 200, body)
        return c

    def journal_events(self, prefix):
        events = []
        folder = os.path.join(self.data, "journal")
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name)) as f:
                for line in f:
                    with_event = json.loads(line)
                    if with_event["event"].startswith(prefix):
                        events.append(with_event)
        return events

    def openapi_operations(self, client):
        status, _, doc = client.request("GET", "/api/v1/openapi.json")
        self.assertEqual(status, 200, doc)
        ops = []
        for path, item in doc["paths"].items():
            for method, op in item.items():
                ops.append((method.upper(), path, op))
        return ops



class WebAuthTests(WebServiceCase):
    """The tests, run once per database."""

    def test_first_start_admin_login_whoami_logout(self):
        self.start_web()
        password = self.admin_password()
        self.assertIn("change it", self.log())
        c = Http(self.port)
        status, resp, body = c.login("admin", password)
        self.assertEqual(status, 200, body)
        cookie = resp.getheader("Set-Cookie")
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Strict", cookie)
        self.assertNotIn("Secure", cookie)  # plain HTTP here
        self.assertTrue(body["csrf_token"])
        status, _, me = c.request("GET", "/api/v1/session")
        self.assertEqual((status, me["username"], me["role"]), (200, "admin", "admin"))
        status, _, _ = c.request("DELETE", "/api/v1/session")
        self.assertEqual(status, 200)
        c.cookie = cookie.split(";", 1)[0]  # the old cookie is dead now
        status, _, _ = c.request("GET", "/api/v1/session")
        self.assertEqual(status, 401)
        actions = [e["event"] for e in self.journal_events("audit.")]
        self.assertIn("audit.user.created", actions)
        self.assertIn("audit.login", actions)
        self.assertIn("audit.logout", actions)
        # The password is logged once, never stored in clear anywhere in the data folder.
        for root, _, files in os.walk(self.data):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    self.assertNotIn(password.encode(), f.read(), name)

    def test_wrong_password_401_then_backoff_429(self):
        self.start_web()
        password = self.admin_password()
        c = Http(self.port)
        for _ in range(3):
            status, _, body = c.login("admin", "wrong password")
            self.assertEqual(status, 401, body)
        status, resp, body = c.login("admin", password)  # even the right one must wait
        self.assertEqual(status, 429, body)
        self.assertGreaterEqual(int(resp.getheader("Retry-After")), 1)
        time.sleep(1.2)
        status, _, body = c.login("admin", "wrong again")
        self.assertEqual(status, 401, body)
        status, resp, body = c.login("admin", password)
        self.assertEqual(status, 429, body)
        self.assertGreaterEqual(int(resp.getheader("Retry-After")), 1)  # doubled: 2 s
        time.sleep(2.2)
        status, _, body = c.login("admin", password)
        self.assertEqual(status, 200, body)
        # Success reset the count: one more failure is a plain 401 again.
        status, _, _ = Http(self.port).login("admin", "wrong password")
        self.assertEqual(status, 401)
        self.assertTrue(self.journal_events("audit.login_failed"))

    def test_login_refuses_forms_and_impossible_names_without_a_trace(self):
        self.start_web()
        c = Http(self.port)
        form = "username=admin&password=x"
        status, _, body = c.request("POST", "/api/v1/session", form,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 415, body)
        journal = os.path.join(self.data, "journal")
        journal_before = sum(os.path.getsize(os.path.join(journal, n)) for n in os.listdir(journal))
        for _ in range(5):
            status, _, body = c.login("x" * 100000, "whatever")
            self.assertEqual(status, 413, body)
            status, _, body = c.login("x" * 2000, "whatever")  # no account has such a name
            self.assertEqual(status, 401, body)
        journal_after = sum(os.path.getsize(os.path.join(journal, n)) for n in os.listdir(journal))
        self.assertLess(journal_after - journal_before, 1000, "no audit of impossible names")
        # ... and they do not count against a real account or the address.
        status, _, body = c.login("admin", self.admin_password())
        self.assertEqual(status, 200, body)

    def test_csrf_token_required_for_cookie_requests(self):
        self.start_web()
        c = self.admin()
        new_user = {"username": "bob", "password": "bob-password", "role": "viewer"}
        status, _, body = c.request("POST", "/api/v1/users", new_user, csrf=False)
        self.assertEqual(status, 403, body)
        self.assertIn("X-CSRF-Token", body["error"])
        status, _, body = c.request("POST", "/api/v1/users", new_user,
                                    headers={"X-CSRF-Token": "forged"}, csrf=False)
        self.assertEqual(status, 403, body)
        status, _, body = c.request("POST", "/api/v1/users", new_user)
        self.assertEqual(status, 201, body)

    def test_viewer_cannot_call_operator_or_admin_actions(self):
        self.start_web()
        admin = self.admin()
        for name, role in (("vera", "viewer"), ("otto", "operator")):
            status, _, body = admin.request("POST", "/api/v1/users",
                                            {"username": name, "password": name + "-password",
                                             "role": role})
            self.assertEqual(status, 201, body)
        viewer = Http(self.port)
        status, _, body = viewer.login("vera", "vera-password")
        self.assertEqual(status, 200, body)
        status, _, body = viewer.request("POST", "/api/v1/users",
                                         {"username": "x", "password": "xxxxxxxxx",
                                          "role": "admin"})
        self.assertEqual(status, 403, body)
        self.assertIn("admin role", body["error"])
        # Every operation that needs more than viewer is refused, with a session and a token.
        status, _, tok = viewer.request("POST", "/api/v1/tokens", {"name": "vera's"})
        self.assertEqual(status, 201, tok)
        by_token = Http(self.port)
        by_token.token = tok["token"]
        checked = 0
        for method, path, op in self.openapi_operations(admin):
            if op["x-ferry-min-role"] not in ("operator", "admin"):
                continue
            concrete = re.sub(r"\{[^}]+\}", "x1", path)
            for client in (viewer, by_token):
                status, _, body = client.request(method, concrete, {})
                self.assertEqual(status, 403, f"{method} {path}: {body}")
            checked += 1
        self.assertGreater(checked, 5)
        operator = Http(self.port)
        self.assertEqual(operator.login("otto", "otto-password")[0], 200)
        status, _, body = operator.request("GET", "/api/v1/users")
        self.assertEqual(status, 403, body)
        self.assertIn("operator role", body["error"])

    def test_session_expires_after_idle_timeout(self):
        self.start_web()
        c = self.admin()
        self.assertEqual(c.request("GET", "/api/v1/session")[0], 200)
        time.sleep(SESSION_TIMEOUT_S / 2)
        self.assertEqual(c.request("GET", "/api/v1/session")[0], 200)  # activity extends it
        time.sleep(SESSION_TIMEOUT_S + 0.8)
        status, _, body = c.request("GET", "/api/v1/session")
        self.assertEqual(status, 401, body)
        self.assertIn("expired", body["error"])

    def test_api_tokens(self):
        self.start_web()
        admin = self.admin()
        status, _, tok = admin.request("POST", "/api/v1/tokens", {"name": "monitoring"})
        self.assertEqual(status, 201, tok)
        client = Http(self.port)
        client.token = tok["token"]
        status, _, me = client.request("GET", "/api/v1/session")
        self.assertEqual((status, me["username"]), (200, "admin"))
        # No CSRF token needed with a bearer token.
        status, _, body = client.request("POST", "/api/v1/users",
                                         {"username": "carl", "password": "carl-password",
                                          "role": "viewer"})
        self.assertEqual(status, 201, body)
        status, _, listed = admin.request("GET", "/api/v1/tokens")
        self.assertEqual([t["name"] for t in listed["tokens"]], ["monitoring"])
        self.assertNotIn("token", listed["tokens"][0])  # shown once, never again
        self.assertTrue(listed["tokens"][0]["last_used_at"])
        bad = Http(self.port)
        bad.token = tok["token"][:-1] + ("0" if tok["token"][-1] != "0" else "1")
        self.assertEqual(bad.request("GET", "/api/v1/session")[0], 401)
        status, _, _ = admin.request("DELETE", f"/api/v1/tokens/{tok['id']}")
        self.assertEqual(status, 200)
        self.assertEqual(client.request("GET", "/api/v1/session")[0], 401)
        actions = [e["event"] for e in self.journal_events("audit.token")]
        self.assertEqual(actions, ["audit.token.created", "audit.token.deleted"])

    def test_nothing_but_healthz_and_login_answers_without_auth(self):
        self.start_web()
        admin = self.admin()
        anonymous = Http(self.port)
        ops = self.openapi_operations(admin)
        self.assertGreater(len(ops), 10)
        public = set()
        for method, path, op in ops:
            concrete = re.sub(r"\{[^}]+\}", "x1", path)
            status, _, body = anonymous.request(method, concrete, {})
            if status != 401:
                public.add((method, path))
                self.assertEqual(op.get("security"), [], f"{method} {path}")
        self.assertEqual(public, {("GET", "/healthz"), ("POST", "/api/v1/session")})
        status, _, health = anonymous.request("GET", "/healthz")
        self.assertEqual((status, health), (200, {"status": "ok", "database": "ok"}))

    def test_config_validate_and_put(self):
        self.start_web()
        admin = self.admin()
        with open(self.config_path, "rb") as f:
            original = f.read()
        status, _, current = admin.request("GET", "/api/v1/config")
        self.assertEqual((status, current), (200, json.loads(original)))

        invalid = dict(current, receiver={"port": "eleven"},
                       rules={"bad": {"rule": "@Modality@ ==", "target": ""}})
        status, _, result = admin.request("POST", "/api/v1/config/validate", invalid)
        self.assertEqual(status, 200, result)
        self.assertFalse(result["valid"])
        paths = [e["path"] for e in result["errors"]]
        self.assertIn("$.receiver.port", paths)
        status, _, result = admin.request("PUT", "/api/v1/config", invalid)
        self.assertEqual(status, 422, result)
        with open(self.config_path, "rb") as f:
            self.assertEqual(f.read(), original)
        status, _, _ = admin.request("PUT", "/api/v1/config", "{not json")
        self.assertEqual(status, 422)

        valid = json.loads(original)
        valid["receiver"] = {"ae_title": "NEWAET"}
        valid["targets"] = {"pacs": {"target_type": "dicomweb",
                                     "url": "http://127.0.0.1:1/dicomweb",
                                     "access_token": "env:HOME"}}
        status, _, result = admin.request("POST", "/api/v1/config/validate", valid)
        self.assertTrue(result["valid"], result)
        os.chmod(self.config_path, 0o600)
        status, _, result = admin.request("PUT", "/api/v1/config", valid)
        self.assertEqual(status, 200, result)
        with open(self.config_path) as f:
            self.assertEqual(json.load(f), valid)
        self.assertEqual(os.stat(self.config_path).st_mode & 0o777, 0o600)
        self.assertEqual([f for f in os.listdir(self.workdir) if ".tmp" in f], [])
        changed = self.journal_events("audit.config.changed")
        self.assertEqual(len(changed), 1)
        changes = {c["path"]: c for c in changed[0]["details"]["changes"]}
        self.assertEqual(changes["$.receiver.ae_title"]["new"], "NEWAET")
        self.assertEqual(changes["$.targets.pacs.access_token"]["new"], "***")  # masked
        self.assertEqual(changed[0]["details"]["actor"], "admin")

    def test_audit_log_pages(self):
        self.start_web()
        admin = self.admin()
        # The bookkeeper loads audit.* journal events into the audit table; fill it directly.
        rows = ", ".join(f"({1767225600000000 + i}, '2026-01-01T00:00:0{i}Z', "
                         f"'{'admin' if i % 2 else 'cli:root'}', '127.0.0.1', 'login', 'admin', "
                         f"'{{\"n\": {i}}}')" for i in range(5))
        self.db_exec("INSERT INTO audit (ts_us, time, actor, address, action, object, details) "
                     f"VALUES {rows}")
        status, _, page = admin.request("GET", "/api/v1/audit?limit=2")
        self.assertEqual(status, 200, page)
        self.assertEqual(page["total"], 5)
        self.assertEqual([e["details"]["n"] for e in page["items"]], [4, 3])  # newest first
        self.assertEqual(page["next_offset"], 2)
        status, _, page = admin.request("GET", "/api/v1/audit?limit=2&offset=4")
        self.assertEqual([e["details"]["n"] for e in page["items"]], [0])
        self.assertIsNone(page["next_offset"])
        status, _, page = admin.request("GET", "/api/v1/audit?actor=admin")
        self.assertEqual([e["details"]["n"] for e in page["items"]], [3, 1])

    def test_metrics_text_parses(self):
        os.makedirs(os.path.join(self.data, "outgoing", "task-a"))
        os.makedirs(os.path.join(self.data, "run"))
        with open(os.path.join(self.data, "run", "services.json"), "w") as f:
            json.dump({"services": {"receiver": {"pid": 1, "state": "running", "restarts": 3}},
                       "updated_at": "2026-11-24T00:00:00Z"}, f)
        self.start_web()
        admin = self.admin()
        self.assertEqual(Http(self.port).request("GET", "/metrics")[0], 401)
        status, resp, text = admin.request("GET", "/metrics", raw=True)
        self.assertEqual(status, 200)
        self.assertIn("version=0.0.4", resp.getheader("Content-Type"))
        types = {}
        samples = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ")
                self.assertNotIn(name, types, f"two TYPE lines for {name}")
                types[name] = kind
            elif line.startswith("# HELP ") or not line:
                continue
            else:
                self.assertRegex(line, METRIC_LINE_RE)
                name_labels, value = line.rsplit(" ", 1)
                samples[name_labels] = float(value)
        self.assertEqual(samples['ferry_spool_entries{stage="outgoing"}'], 1)
        self.assertEqual(samples['ferry_service_up{service="receiver"}'], 1)
        self.assertEqual(samples['ferry_service_restarts_total{service="receiver"}'], 3)
        self.assertEqual(samples["ferry_database_up"], 1)
        self.assertIn("ferry_journal_lag_bytes", samples)
        self.assertEqual(types["ferry_service_restarts_total"], "counter")

    def test_user_cli_before_first_start(self):
        pw_file = os.path.join(self.workdir, "pw")
        with open(pw_file, "w") as f:
            f.write("alice-password\n")
        cli = [FERRY_BIN, "user", "add", "alice", "--role", "admin", "--password-file", pw_file,
               "--config", self.config_path]
        p = subprocess.run(cli, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([FERRY_BIN, "user", "add", "victor", "--role", "viewer", "--config",
                            self.config_path], input="victor-password\n", capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([FERRY_BIN, "user", "token", "alice", "--name", "ci", "--config",
                            self.config_path], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        token = p.stdout.strip()
        p = subprocess.run([FERRY_BIN, "user", "list", "--config", self.config_path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"alice\s+admin")
        self.assertRegex(p.stdout, r"victor\s+viewer")
        p = subprocess.run([FERRY_BIN, "user", "add", "bad", "--role", "root", "--config",
                            self.config_path], input="whatever-password\n", capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("admin, operator or viewer", p.stderr)

        self.start_web()
        self.assertEqual(self.proc.poll(), None)
        time.sleep(0.5)
        self.assertNotIn("created the first account", self.log())
        c = Http(self.port)
        self.assertEqual(c.login("alice", "alice-password")[0], 200)
        self.assertEqual(c.login("admin", "anything-at-all")[0], 401)
        by_token = Http(self.port)
        by_token.token = token
        status, _, me = by_token.request("GET", "/api/v1/session")
        self.assertEqual((status, me["username"]), (200, "alice"))

        p = subprocess.run([FERRY_BIN, "user", "passwd", "victor", "--config", self.config_path],
                           input="victor-new-password\n", capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(Http(self.port).login("victor", "victor-new-password")[0], 200)
        p = subprocess.run([FERRY_BIN, "user", "delete", "victor", "--config", self.config_path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(Http(self.port).login("victor", "victor-new-password")[0], 401)
        cli_events = [e for e in self.journal_events("audit.") if e["service"] == "cli"]
        self.assertEqual([e["event"] for e in cli_events],
                         ["audit.user.created", "audit.user.created", "audit.token.created",
                          "audit.user.updated", "audit.user.deleted"])
        self.assertTrue(cli_events[0]["details"]["actor"].startswith("cli:"))


class WebTlsTest(WebServiceCase, unittest.TestCase):
    """web.tls: HTTPS with the configured certificate and key; the session cookie is Secure."""

    def database_uri(self):
        return ""

    def setUp(self):
        super().setUp()
        cert = os.path.join(self.workdir, "web.crt")
        key = os.path.join(self.workdir, "web.key")
        p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "1", "-subj",
                            "/CN=127.0.0.1"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["web"]["tls"] = {"enabled": True, "certificate": cert, "key": key}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)

    def test_https_and_secure_cookie(self):
        self.start_web()
        c = Http(self.port, tls=True)
        status, resp, body = c.login("admin", self.admin_password())
        self.assertEqual(status, 200, body)
        self.assertIn("Secure", resp.getheader("Set-Cookie"))
        status, _, me = c.request("GET", "/api/v1/session")
        self.assertEqual((status, me["username"]), (200, "admin"))
        # Plain HTTP on the TLS port gets no answer.
        with self.assertRaises((http.client.HTTPException, OSError)):
            Http(self.port).request("GET", "/healthz")

    def test_bad_certificate_is_refused_at_start(self):
        with open(os.path.join(self.workdir, "web.key"), "w") as f:
            f.write("not a key\n")
        proc = subprocess.run([FERRY_BIN, "web", "--config", self.config_path],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("web TLS certificate", proc.stderr)


class WebAuthSqliteTest(WebAuthTests, unittest.TestCase):
    def database_uri(self):
        return ""  # the default: <data>/ferry.db


@unittest.skipUnless(postgres_available(), "PostgreSQL 15 server binaries not installed")
class WebAuthPostgresTest(WebAuthTests, unittest.TestCase):
    pg = None
    pg_dir = None
    counter = 0

    @classmethod
    def setUpClass(cls):
        cls.pg_dir = tempfile.mkdtemp(prefix="ferry-web-pg-")
        cls.pg = PostgresPeer(cls.pg_dir).start()

    @classmethod
    def tearDownClass(cls):
        if cls.pg is not None:
            cls.pg.stop()
        shutil.rmtree(cls.pg_dir, ignore_errors=True)

    def database_uri(self):
        # A fresh database per test: every test starts with an empty users table.
        type(self).counter += 1
        name = f"web{type(self).counter}"
        self.pg.query(f"CREATE DATABASE {name}", db="postgres")
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}/{name}"

    def test_prefix_search_with_many_matches_says_more_than(self):
        # PostgreSQL counts a name prefix's matches from the table; beyond 5,000 the total is a
        # lower bound (total_capped) instead of a count that would take seconds.
        self.start_web()
        admin = self.admin()
        self.pg.query("INSERT INTO tasks (task_id, patient_name, created_us) SELECT 't' || i, "
                      "'Capped^Many', i FROM generate_series(1, 5002) AS i; "
                      "INSERT INTO tasks (task_id, patient_name, created_us) VALUES "
                      "('few1', 'Capable^Few', 1), ('few2', 'Capable^Few', 2)",
                      db=f"web{type(self).counter}")
        status, _, body = admin.request("GET", "/api/v1/tasks?patient_name_prefix=capped")
        self.assertEqual(status, 200, body)
        self.assertEqual((body["total"], body.get("total_capped")), (5000, True))
        self.assertEqual(len(body["items"]), 50)
        self.assertEqual(body["items"][0]["task_id"], "t5002")  # newest first
        status, _, body = admin.request("GET", "/api/v1/tasks?patient_name_prefix=capable")
        self.assertEqual((body["total"], body.get("total_capped")), (2, None))

    def test_database_outage_503_then_recovers(self):
        self.start_web()
        admin = self.admin()
        status, _, tok = admin.request("POST", "/api/v1/tokens", {"name": "outage"})
        self.assertEqual(status, 201, tok)
        self.pg.stop()
        try:
            status, _, health = Http(self.port).request("GET", "/healthz")
            self.assertEqual(status, 200)
            self.assertTrue(health["database"].startswith("unavailable"), health)
            self.assertEqual(health["database"], "unavailable", "no connection details")
            status, _, body = admin.request("GET", "/api/v1/users")
            self.assertEqual(status, 503, body)
            # A session whose account cannot be checked is not trusted with its login role,
            # even on routes that need no database.
            status, _, body = admin.request("GET", "/api/v1/config")
            self.assertEqual(status, 503, body)
            self.assertIsNone(self.proc.poll())
        finally:
            self.pg.start()
        by_token = Http(self.port)
        by_token.token = tok["token"]
        wait_for(lambda: by_token.request("GET", "/api/v1/users")[0] == 200, 20, interval=0.5,
                 what="the web service to reconnect to PostgreSQL")
        # Every worker thread finds the database again, each within its 2 s reconnect interval
        # (consecutive /healthz calls meet different workers).
        def all_ok():
            return all(Http(self.port).request("GET", "/healthz")[2]["database"] == "ok"
                       for _ in range(12))
        wait_for(all_ok, 15, interval=0.5, what="every web worker to reconnect to PostgreSQL")


if __name__ == "__main__":
    unittest.main()

"""Notification peers for the notifier's end-to-end tests, both on free loopback ports in
threads of the test process:

WebhookReceiver: an HTTP server that records every POST (path, headers, JSON body) and can be
told to answer the next N calls with a status (500 by default) before it accepts again.

SmtpServer: an aiosmtpd server (Debian's python3-aiosmtpd) that stores every message, with
optional AUTH (LOGIN/PLAIN against one user) and optional STARTTLS with a self-signed
certificate made by openssl (`make_certificate`)."""
import contextlib
import email
import email.policy
import http.server
import json
import logging
import os
import ssl
import subprocess
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ferrytest import free_port, wait_for

# aiosmtpd warns about AUTH without TLS (wanted here: a test of a refused login) and logs every
# session; the tests look at what arrived instead.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
logging.getLogger("mail.log").setLevel(logging.CRITICAL)


class WebhookReceiver:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.lock = threading.Lock()
        self.calls = []        # every request: {"path", "headers", "body", "status"}
        self.fail_next = 0     # answer this many calls with fail_status
        self.fail_status = 500
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with receiver.lock:
                    status = 200
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        status = receiver.fail_status
                    receiver.calls.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def fail(self, count, status=500):
        with self.lock:
            self.fail_next = count
            self.fail_status = status

    def accepted(self):
        """Bodies of the calls answered 2xx, in order."""
        with self.lock:
            return [c["body"] for c in self.calls if c["status"] < 300]

    def all_calls(self):
        with self.lock:
            return list(self.calls)

    def wait_accepted(self, count, timeout=30):
        return wait_for(lambda: (lambda a: a if len(a) >= count else None)(self.accepted()),
                        timeout, what=f"{count} accepted webhook call(s)")


def make_certificate(folder):
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    cert = os.path.join(folder, "smtp-cert.pem")
    key = os.path.join(folder, "smtp-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class SmtpServer:
    def __init__(self, user=None, password=None, cert=None, key=None):
        self.port = free_port()
        self.lock = threading.Lock()
        self.messages = []   # {"from", "to", "message" (email.message.EmailMessage)}
        self.logins = []     # user names that authenticated
        self.user = user
        self.password = password
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                               policy=email.policy.default)
                with server.lock:
                    server.messages.append({"from": envelope.mail_from,
                                            "to": list(envelope.rcpt_tos), "message": msg,
                                            "tls": session.ssl is not None})
                return "250 OK"

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == self.user
                  and auth_data.password.decode() == self.password)
            if ok:
                with self.lock:
                    self.logins.append(self.user)
            return AuthResult(success=ok, handled=False)

        kwargs = {}
        if user is not None:
            kwargs.update(authenticator=authenticator, auth_required=True,
                          auth_require_tls=cert is not None)
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            kwargs.update(tls_context=context, require_starttls=True)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     **kwargs)

    def start(self):
        # Again here: unittest resets the warning filters when it starts running tests.
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
        self.controller.start()
        return self

    def stop(self):
        with contextlib.suppress(Exception):
            self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def received(self):
        with self.lock:
            return list(self.messages)

    def wait_messages(self, count, timeout=30):
        return wait_for(lambda: (lambda m: m if len(m) >= count else None)(self.received()),
                        timeout, what=f"{count} e-mail(s)")

"""Listening ports are ferry's alone: a second ferry whose web service asks for a port that is
already in use is refused with a message that names the port and the fix, instead of sharing
it (with SO_REUSEPORT the kernel would spread requests over both processes and their data
folders), and the supervisor reports the failing service like any other crash.
"""
import json
import socket
import subprocess
import unittest
import urllib.request

from ferrytest import FERRY_BIN, FerryTestCase, free_port, port_open, wait_for


class PortTest(FerryTestCase):
    def web(self, port):
        """A `ferry web` with its own data folder, on `port`."""
        f = self.ferry(mode="web")
        with open(f.config_path) as fh:
            cfg = json.load(fh)
        cfg["web"] = {"host": "127.0.0.1", "port": port}
        with open(f.config_path, "w") as fh:
            json.dump(cfg, fh)
        return f

    def test_second_web_service_on_the_same_port_is_refused(self):
        port = free_port()
        first = self.web(port)
        first.start(wait=False)
        wait_for(lambda: port_open(port), 30, what="the first web service")

        second = self.web(port)
        p = subprocess.run([FERRY_BIN, "web", "--config", second.config_path],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        out = p.stdout + p.stderr
        self.assertIn(f"cannot listen on 127.0.0.1:{port}: the port is in use", out)
        self.assertIn("change web.port", out)
        # The first one still answers, alone.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            self.assertEqual(r.status, 200)

    def test_supervisor_reports_a_web_service_that_cannot_listen(self):
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            f = self.ferry(mode="serve", extra={"supervisor": {"restart_backoff_initial": 1}})
            with open(f.config_path) as fh:
                cfg = json.load(fh)
            cfg["web"]["port"] = port
            with open(f.config_path, "w") as fh:
                json.dump(cfg, fh)
            f.start()  # the receiver listens: the rest of ferry keeps working
            wait_for(lambda: [e for e in f.events("supervisor")
                              if e["event"] == "service.crashed"
                              and e["details"].get("service") == "web"], 30,
                     what="the supervisor to report the web service")
            self.assertIn(f"cannot listen on 127.0.0.1:{port}: the port is in use",
                          f.log_text())
            self.assertTrue(port_open(f.port))
        finally:
            holder.close()


if __name__ == "__main__":
    unittest.main()

"""`ferry serve`: restarts a receiver that dies, stops cleanly on SIGTERM while a transfer is in
flight, and a hung supervisor does not stop reception. Plus `ferry receiver` alone on
SIGTERM/SIGINT."""
import contextlib
import os
import signal
import subprocess
import time
import unittest

from ferrytest import (TOOL_ENV, echoscu, FerryTestCase, port_open, store_results, storescu,
                       wait_for)


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # pid (comm) state ppid ...; comm may contain spaces or parentheses.
    return int(stat[stat.rindex(")") + 2:].split()[1])


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def proc_state(pid):
    """The state letter of a process (R, S, T, Z, ...), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return stat[stat.rindex(")") + 2]
    except OSError:
        return None


def is_zombie(pid):
    return proc_state(pid) in (None, "Z")


def live_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def receiver_children(serve_pid):
    return [pid for pid in live_pids() if parent_of(pid) == serve_pid and not is_zombie(pid)
            and b"receiver" in cmdline(pid)]


def service_children(serve_pid, service):
    return [pid for pid in live_pids() if parent_of(pid) == serve_pid and not is_zombie(pid)
            and service.encode() in cmdline(pid)]


def ferry_processes(config_path):
    """Live processes started with this test's config file (the supervisor and its services)."""
    needle = config_path.encode()
    return [pid for pid in live_pids() if needle in cmdline(pid) and not is_zombie(pid)]


class SupervisorTest(FerryTestCase):

    def serve(self, receiver=None, supervisor=None):
        sup = {"restart_backoff_initial": 1}
        sup.update(supervisor or {})
        f = self.ferry(mode="serve", receiver=receiver, extra={"supervisor": sup}).start()
        return f

    def the_receiver(self, f):
        children = wait_for(lambda: receiver_children(f.proc.pid), 15,
                            what="the receiver child process")
        self.assertEqual(len(children), 1, children)
        return children[0]

    def tearDown(self):
        # A test that failed while the supervisor was stopped must not leave it stopped.
        for f in self._ferries:
            if f.proc is not None:
                try:
                    os.killpg(f.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        super().tearDown()

    def test_receiver_keeps_accepting_while_the_router_hangs_or_crashes(self):
        f = self.serve()
        router = wait_for(lambda: service_children(f.proc.pid, "router"), 15,
                          what="the router child process")[0]
        os.kill(router, signal.SIGSTOP)  # a hung router
        try:
            uid, files = self.make_series(5)
            p = storescu(f.port, files)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(len(f.instances(uid)), 5)
        finally:
            os.kill(router, signal.SIGCONT)
        os.kill(router, signal.SIGKILL)  # a crashed router
        uid2, files2 = self.make_series(3)
        p = storescu(f.port, files2)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # The supervisor restarts the router, which then routes both series (no rules: discard).
        wait_for(lambda: [c for c in service_children(f.proc.pid, "router") if c != router], 15,
                 what="a new router child")
        wait_for(lambda: len(f.series_dirs()) == 0, 20, what="the router to take both series")
        crashed = [e for e in f.events("supervisor") if e["event"] == "service.crashed"]
        self.assertEqual([e["details"]["service"] for e in crashed], ["router"])
        self.assertEqual(f.stop(), 0)

    def test_killed_receiver_is_restarted(self):
        f = self.serve()
        child = self.the_receiver(f)
        self.assertEqual(echoscu(f.port).returncode, 0)
        killed_at = time.monotonic()
        os.kill(child, signal.SIGKILL)
        new = wait_for(lambda: [c for c in receiver_children(f.proc.pid) if c != child], 15,
                       what="a new receiver child")[0]

        def echo_ok():
            return port_open(f.port) and echoscu(f.port, extra=["-to", "5", "-ta", "5"]
                                                 ).returncode == 0
        wait_for(echo_ok, 15, interval=0.2, what="echo after the restart")
        took = time.monotonic() - killed_at
        self.assertLess(took, 15)
        self.assertIsNone(f.proc.poll())
        events = f.events("supervisor")
        crashed = [e["details"] for e in events if e["event"] == "service.crashed"]
        self.assertEqual(len(crashed), 1, events)
        self.assertEqual(crashed[0]["service"], "receiver")
        self.assertEqual(crashed[0]["pid"], child)
        self.assertIn("killed by signal", crashed[0]["exit"])
        restarted = [e["details"] for e in events if e["event"] == "service.restarted"]
        self.assertEqual(len(restarted), 1, events)
        self.assertEqual(restarted[0]["service"], "receiver")
        self.assertEqual(restarted[0]["pid"], new)
        # The new receiver stores.
        _, files = self.make_series(3)
        p = storescu(f.port, files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(len(f.instances()), 3)
        self.assertEqual(f.stop(timeout=45), 0)
        print(f"\nreceiver back after {took:.1f} s")

    def test_sigterm_during_transfer_lets_it_finish(self):
        f = self.serve(receiver={"shutdown_grace": 30}, supervisor={"shutdown_timeout": 40})
        child = self.the_receiver(f)
        count = 300
        _, files = self.make_series(count, rows=64, cols=64)
        sender = subprocess.Popen(["storescu", "-v", "-aec", "FERRY", "-nh", "127.0.0.1",
                                   str(f.port), *files], env=TOOL_ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            wait_for(lambda: len(f.instances()) >= 30 or sender.poll() is not None, 60,
                     interval=0.005, what="the transfer to be under way")
            self.assertIsNone(sender.poll(), "the transfer ended before SIGTERM")
            stopped_at = time.monotonic()
            f.proc.send_signal(signal.SIGTERM)
            output, _ = sender.communicate(timeout=60)
        finally:
            if sender.poll() is None:
                sender.kill()
                sender.wait(timeout=10)
        code = f.proc.wait(timeout=60)
        took = time.monotonic() - stopped_at
        self.assertEqual(code, 0, f.log_text()[-3000:])
        results = store_results(output)
        acked = [src for src, response in results if response == "Success"]
        self.assertEqual(sender.returncode, 0, output[-3000:])
        self.assertEqual(len(acked), count, output[-3000:])
        self.assertEqual(len(f.instances()), count)
        # Nothing of ferry is left running and the port is free.
        self.assertEqual(ferry_processes(f.config_path), [])
        self.assertTrue(is_zombie(child), f"receiver {child} still running")
        self.assertFalse(port_open(f.port))
        sup = f.events("supervisor")
        stopped = [e["details"] for e in sup if e["event"] == "service.stopped"]
        self.assertEqual(sorted(d["service"] for d in stopped),
                         ["bookkeeper", "cleaner", "dispatcher", "notifier", "processor",
                          "receiver", "router", "web"], sup)
        self.assertTrue(all(d["exit"] == "exited with code 0" for d in stopped), stopped)
        self.assertIn("supervisor.stopped", [e["event"] for e in sup])
        rec = [e for e in f.events() if e["event"] == "service.stopped"]
        self.assertEqual(len(rec), 1)
        self.assertTrue(rec[0]["details"]["clean"])
        closed = [e["details"] for e in f.events() if e["event"] == "association.closed"]
        self.assertEqual([(d["result"], d["instances"]) for d in closed], [("released", count)])
        self.assertEqual(f.stop(), 0)
        print(f"\nserve exited {took:.1f} s after SIGTERM")

    def test_receiver_keeps_working_while_supervisor_is_stopped(self):
        f = self.serve()
        child = self.the_receiver(f)
        os.kill(f.proc.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: proc_state(f.proc.pid) == "T", 5, what="the supervisor to be stopped")
            p = echoscu(f.port, extra=["-to", "10", "-ta", "10"])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            _, files = self.make_series(20)
            p = storescu(f.port, files, extra=["-to", "10", "-ta", "10"], timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(len(f.instances()), 20)
        finally:
            os.kill(f.proc.pid, signal.SIGCONT)
        # After SIGCONT the supervisor carries on with the same child.
        time.sleep(0.5)
        self.assertIsNone(f.proc.poll())
        self.assertEqual(receiver_children(f.proc.pid), [child])
        self.assertEqual(echoscu(f.port).returncode, 0)
        self.assertFalse([e for e in f.events("supervisor") if e["event"] == "service.crashed"])
        self.assertEqual(f.stop(timeout=45), 0)
        self.assertEqual(ferry_processes(f.config_path), [])

    def test_killed_supervisor_takes_receiver_down(self):
        # PR_SET_PDEATHSIG: no orphan receiver keeps holding the DICOM port.
        f = self.serve()
        child = self.the_receiver(f)
        os.kill(f.proc.pid, signal.SIGKILL)
        f.proc.wait(timeout=10)
        wait_for(lambda: is_zombie(child), 20,
                 what="the orphaned receiver to exit")
        wait_for(lambda: not port_open(f.port), 10, what="the port to be released")
        # The other services got SIGTERM at the same time and stop on their own schedule.
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not ferry_processes(f.config_path), 20,
                     what="every service to exit")
        self.assertEqual(ferry_processes(f.config_path), [])

    def test_receiver_alone_stops_on_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name):
                f = self.ferry().start()
                self.assertEqual(echoscu(f.port).returncode, 0)
                started = time.monotonic()
                self.assertEqual(f.stop(sig=sig, timeout=20), 0, f.log_text()[-2000:])
                self.assertLess(time.monotonic() - started, 10)
                stopped = [e for e in f.events() if e["event"] == "service.stopped"]
                self.assertEqual(len(stopped), 1)
                self.assertTrue(stopped[0]["details"]["clean"])
                self.assertFalse(port_open(f.port))


if __name__ == "__main__":
    unittest.main()

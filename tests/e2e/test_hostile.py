"""Peers that hold the receiver's workers: connections that drip their association request a
byte at a time, or that keep connecting from one address, must not keep other senders from
being served. (Each worker serves one association; without a total deadline a peer that sends
a byte every few seconds would hold its worker for ever, and one address could take them all.)
"""
import select
import socket
import threading
import time
import unittest

from ferrytest import FerryTestCase, run, storescu


def drip(port, stop, closed, source="127.0.0.2"):
    """Connects and sends an A-ASSOCIATE-RQ's first bytes one at a time, one a second, until the
    receiver closes the connection (the time is appended to `closed`) or `stop` is set."""
    s = socket.socket()
    s.bind((source, 0))
    try:
        s.connect(("127.0.0.1", port))
        for b in b"\x01\x00\x00\x00\x00\xcd\x00\x01" * 100:
            if stop.is_set():
                return
            readable, _, _ = select.select([s], [], [], 0)
            if readable and s.recv(64) == b"":
                break  # the receiver closed the connection
            s.send(bytes([b]))
            time.sleep(1)
    except OSError:
        pass  # refused or reset by the receiver
    finally:
        closed.append(time.monotonic())
        s.close()


class HostileTest(FerryTestCase):
    def test_slow_drip_connections_from_one_address_do_not_stop_others(self):
        f = self.ferry(receiver={"max_associations": 8, "max_associations_per_peer": 4,
                                 "network_timeout": 4}).start()
        stop = threading.Event()
        closed = []
        threads = [threading.Thread(target=drip, args=(f.port, stop, closed)) for _ in range(12)]
        started = time.monotonic()
        for t in threads:
            t.start()
        try:
            time.sleep(2)  # every drip connected and sending
            # Another address (the drips come from 127.0.0.2) is served at once: C-ECHO, then
            # a series.
            t0 = time.monotonic()
            p = run(["echoscu", "-aet", "OTHER", "-aec", "FERRY", "-to", "5", "127.0.0.1",
                     str(f.port)], timeout=30)
            echo_s = time.monotonic() - t0
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertLess(echo_s, 3.0)
            _, files = self.make_series(3)
            self.assertEqual(storescu(f.port, files).returncode, 0)
            # The drips are closed: those over the per-peer cap at once, the others once their
            # request took longer than network_timeout (not a byte a second for ever).
            for t in threads:
                t.join(timeout=30)
            self.assertEqual(len(closed), 12)
            ends = sorted(c - started for c in closed)
            self.assertLess(ends[7], 2.0, ends)   # 8 over the cap of 4: refused at once
            self.assertGreater(ends[8], 3.0, ends)  # 4 held until their request timed out...
            self.assertLess(ends[11], 4 + 4, ends)  # ...4 s after they connected, not later
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)
        self.assertIn("receiver.max_associations_per_peer", f.log_text())


if __name__ == "__main__":
    unittest.main()

"""One ferry per data folder: a second `ferry serve`, or a second copy of one service, on a data
folder that a running ferry uses is refused at once with the other process's pid, instead of
routing and sending the same series twice; the lock goes with the process, however it ends.
"""
import os
import subprocess
import unittest

from ferrytest import FERRY_BIN, FerryTestCase, storescu


class OwnerTest(FerryTestCase):
    def test_a_second_ferry_on_the_same_data_folder_is_refused(self):
        first = self.ferry(mode="serve").start()
        for command in (["serve"], ["processor"], ["router"], ["dispatcher"], ["receiver"]):
            p = subprocess.run([FERRY_BIN, *command, "--config", first.config_path],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(p.returncode, 0, command)
            service = "supervisor" if command == ["serve"] else command[0]
            out = p.stdout + p.stderr
            self.assertIn(f"another ferry {service} (pid ", out)
            self.assertIn(f"already works on the data folder {first.data}", out)
        with open(os.path.join(first.data, "run", "supervisor.lock")) as f:
            self.assertIn(f"pid {first.proc.pid} on host", f.read())
        # The first one still receives and routes.
        _, files = self.make_series(2)
        self.assertEqual(storescu(first.port, files).returncode, 0)

        # A killed ferry (SIGKILL to all its processes) leaves no lock behind: the next start
        # on the same data folder works.
        first.kill()
        first.start()
        self.assertIsNone(first.proc.poll())
        self.assertNotIn("already works on the data folder", first.log_text())


if __name__ == "__main__":
    unittest.main()

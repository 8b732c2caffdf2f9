"""The sftp target against a real OpenSSH server: `ferry targets test` and `ferry targets send`.

Each test starts its own sshd (peers_sshd.Sshd) on a free loopback port and uploads into a
temporary folder of this machine, so what arrived is checked on disk.
"""
import filecmp
import glob
import json
import os
import socket
import subprocess
import time
import unittest

from ferrytest import FERRY_BIN, FerryTestCase, free_port, make_instance, run, wait_for
from peers_sshd import SSHD, Sshd, keygen


@unittest.skipUnless(os.access(SSHD, os.X_OK), "needs OpenSSH's sshd (Debian openssh-server)")
class SftpTargetTest(FerryTestCase):
    def setUp(self):
        super().setUp()
        self._sshds = []
        self.dest = self.file("dest")
        os.makedirs(self.dest)
        self.known_hosts = self.file("known_hosts")

    def tearDown(self):
        for s in self._sshds:
            s.stop()
        super().tearDown()

    def sshd(self, trusted=True, **kw):
        """Starts an sshd; `trusted` records its host key in self.known_hosts."""
        s = Sshd(self.workdir, **kw).start()
        self._sshds.append(s)
        if trusted:
            with open(self.known_hosts, "a") as f:
                f.write(s.known_hosts_line())
        return s

    def config(self, sshd=None, **target):
        """Writes ferry.json with one sftp target "remote" (key login to `sshd` unless `target`
        says otherwise) and returns its path."""
        t = {"target_type": "sftp", "host": "127.0.0.1", "user": "root", "folder": self.dest,
             "known_hosts_file": self.known_hosts, "timeout": 10}
        if sshd is not None:
            t["port"] = sshd.port
            t["key_file"] = sshd.client_key
        t.update(target)
        t = {k: v for k, v in t.items() if v is not None}
        path = self.file("ferry.json")
        with open(path, "w") as f:
            json.dump({"data_folder": self.file("data"), "targets": {"remote": t}}, f, indent=2)
        return path

    def targets(self, command, config, *files, timeout=120):
        return run([FERRY_BIN, "targets", command, "--config", config, "remote", *files],
                   timeout=timeout)

    def task_dirs(self):
        return sorted(os.path.join(self.dest, d) for d in os.listdir(self.dest)
                      if os.path.isdir(os.path.join(self.dest, d)))

    def assert_delivered(self, files, task_dir):
        """Every file arrived byte for byte, nothing else but `.complete` is there."""
        names = sorted(os.listdir(task_dir))
        self.assertEqual(names, sorted([".complete"] + [os.path.basename(f) for f in files]))
        for f in files:
            self.assertTrue(filecmp.cmp(f, os.path.join(task_dir, os.path.basename(f)),
                                        shallow=False), f)
        self.assertEqual(os.path.getsize(os.path.join(task_dir, ".complete")), 0)

    def test_series_uploaded_with_key(self):
        s = self.sshd()
        _, files = self.make_series(5)
        # One large instance (4.5 MB) takes many SFTP write requests.
        big = self.file("big.dcm")
        make_instance(big, rows=1536, cols=1536)
        files.append(big)
        p = self.targets("send", self.config(s), *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("PASS remote: 6 of 6 delivered", p.stdout)
        self.assertEqual(p.stdout.count(": delivered"), 6, p.stdout)
        dirs = self.task_dirs()
        self.assertEqual(len(dirs), 1, dirs)
        self.assertTrue(os.path.basename(dirs[0]).startswith("send-"), dirs)
        self.assert_delivered(files, dirs[0])

    def test_targets_test_passes_and_leaves_nothing(self):
        s = self.sshd()
        p = self.targets("test", self.config(s))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"^PASS remote \(sftp root@127\.0\.0\.1:\d+")
        self.assertEqual(p.stderr, "")
        self.assertEqual(os.listdir(self.dest), [], "the write probe must be removed")

    def test_password_login(self):
        if not Sshd.password_supported():
            self.skipTest("password logins need a mount namespace (unshare --mount)")
        s = self.sshd(password="ferry-Test-pw1")
        _, files = self.make_series(3)
        p = self.targets("send", self.config(s, key_file=None, password="ferry-Test-pw1"), *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assert_delivered(files, self.task_dirs()[0])
        p = self.targets("test", self.config(s, key_file=None, password="wrong-pw"))
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("refused the login of user root", p.stdout)
        self.assertIn('"password"', p.stdout)

    def test_unknown_host_key_refused_then_accepted_and_recorded(self):
        s = self.sshd(trusted=False)
        _, files = self.make_series(2)
        p = self.targets("send", self.config(s), *files)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("is not in " + self.known_hosts, p.stdout)
        self.assertIn(f"ssh-keyscan -p {s.port} 127.0.0.1", p.stdout)
        self.assertIn('"accept_new_host_key"', p.stdout)
        self.assertFalse(os.path.exists(self.known_hosts), "nothing recorded without consent")
        self.assertEqual(self.task_dirs(), [])

        p = self.targets("test", self.config(s, accept_new_host_key=True))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(self.known_hosts) as f:
            recorded = f.read().split()
        kind, blob = s.known_hosts_line().split()[1:3]
        self.assertEqual(recorded, [f"[127.0.0.1]:{s.port}", kind, blob])

        # Now known: accepted without accept_new_host_key, and not recorded twice.
        p = self.targets("send", self.config(s), *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assert_delivered(files, self.task_dirs()[0])
        with open(self.known_hosts) as f:
            self.assertEqual(len(f.read().splitlines()), 1)

    def test_changed_host_key_refused_even_with_accept_new(self):
        s = self.sshd(trusted=False)
        impostor = keygen(self.file("impostor"))
        with open(impostor + ".pub") as f:
            kind, blob = f.read().split()[:2]
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{s.port} {kind} {blob}\n")
        _, files = self.make_series(1)
        for accept in (False, True):
            p = self.targets("send", self.config(s, accept_new_host_key=accept), *files)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("HOST KEY CHANGED", p.stdout)
            self.assertIn("man-in-the-middle", p.stdout)
            self.assertIn(f"ssh-keygen -f {self.known_hosts} -R '[127.0.0.1]:{s.port}'",
                          p.stdout)
        with open(self.known_hosts) as f:
            self.assertEqual(f.read(), f"[127.0.0.1]:{s.port} {kind} {blob}\n")
        self.assertEqual(self.task_dirs(), [])

    def test_wrong_key_is_refused_login(self):
        s = self.sshd()
        stranger = keygen(self.file("stranger"))
        _, files = self.make_series(2)
        p = self.targets("send", self.config(s, key_file=stranger), *files)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("refused the login of user root", p.stdout)
        self.assertIn(f"public key of {stranger}", p.stdout)
        self.assertIn("authorized_keys", p.stdout)
        self.assertEqual(self.task_dirs(), [])
        p = self.targets("test", self.config(s, key_file=self.file("missing_key")))
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("cannot read the private key", p.stdout)

    def test_key_formats(self):
        s = self.sshd()
        # An RSA key in the old PEM format logs in like the default ed25519 key.
        rsa = self.file("rsa_pem")
        run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", rsa],
            check=True)
        with open(rsa + ".pub") as src, open(s.authorized_keys, "a") as dst:
            dst.write(src.read())
        p = self.targets("test", self.config(s, key_file=rsa))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # A key with a passphrase fails at once: ferry never prompts (OpenSSL would, for PEM).
        for fmt in ("RFC4716", "PEM"):
            key = self.file(f"encrypted_{fmt}")
            run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", fmt, "-N", "secret",
                 "-f", key], check=True)
            p = self.targets("test", self.config(s, key_file=key), timeout=30)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("protected by a passphrase", p.stdout)

    def test_server_not_running_is_unavailable(self):
        port = free_port()
        _, files = self.make_series(1)
        cfg = self.config(port=port, key_file=self.file("unused"))
        p = self.targets("send", cfg, *files)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn(f"cannot connect to the SSH server 127.0.0.1:{port}", p.stdout)
        self.assertIn("Connection refused", p.stdout)
        p = self.targets("test", cfg)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("Connection refused", p.stdout)

    def test_silent_server_times_out(self):
        # A listener that accepts and never says a word, like a hung server.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            port = listener.getsockname()[1]
            started = time.monotonic()
            p = self.targets("test", self.config(port=port, key_file=self.file("unused"),
                                                 timeout=2), timeout=60)
            elapsed = time.monotonic() - started
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("Timeout connecting", p.stdout)
        self.assertLess(elapsed, 20)

    def test_connection_lost_mid_series_is_transient(self):
        s = self.sshd()
        big = self.file("big.dcm")
        make_instance(big, rows=8192, cols=8192)  # 128 MB: still uploading when sshd dies
        _, files = self.make_series(2)
        proc = subprocess.Popen([FERRY_BIN, "targets", "send", "--config", self.config(s),
                                 "remote", big, *files], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            tmp = wait_for(lambda: glob.glob(os.path.join(self.dest, "*", ".big.dcm.tmp")), 60,
                           what="the upload to start")
            s.stop()
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 1, out + err)
        self.assertEqual(out.count(": transient failure: "), 3, out)
        self.assertIn("the SSH connection to root@127.0.0.1", out)
        task_dir = os.path.dirname(tmp[0])
        # Nothing under a final name, no completion marker: a reader sees no partial file.
        self.assertEqual([n for n in os.listdir(task_dir) if not n.endswith(".tmp")], [])

    def test_folder_not_writable_is_permanent(self):
        s = self.sshd(sftp_args=["-R"])  # internal-sftp -R: the server refuses every write
        p = self.targets("test", self.config(s))
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("permission denied", p.stdout)
        self.assertIn("give user root write permission on the target folder", p.stdout)
        _, files = self.make_series(3)
        p = self.targets("send", self.config(s), *files)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertEqual(p.stdout.count(": permanent failure: "), 3, p.stdout)
        self.assertIn("FAIL remote: 0 of 3 delivered", p.stdout)
        self.assertEqual(self.task_dirs(), [])

    def test_missing_folder_is_reported(self):
        s = self.sshd()
        p = self.targets("test", self.config(s, folder=os.path.join(self.dest, "absent")))
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("does not exist", p.stdout)
        with open(self.file("not-a-folder"), "w"):
            pass
        p = self.targets("test", self.config(s, folder=self.file("not-a-folder")))
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("is not a folder", p.stdout)

    def test_file_filter_skips_files(self):
        s = self.sshd()
        _, files = self.make_series(4)
        p = self.targets("send", self.config(s, file_filter="img0001.dcm, *.nothing"), *files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.count("delivered: skipped by file_filter"), 3, p.stdout)
        self.assert_delivered([files[1]], self.task_dirs()[0])


if __name__ == "__main__":
    unittest.main()

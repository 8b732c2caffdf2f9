"""An OpenSSH server (SFTP peer) for end-to-end tests.

Sshd starts /usr/sbin/sshd in the foreground on a free loopback port with its own host key,
config and authorized key in a temporary folder, waits until it accepts connections, and stops
it again. It runs as root (the tests do) and logs in as root.

sshd needs its privilege separation folder /run/sshd, which only a started ssh service creates,
and password logins without PAM read the password hash from /etc/shadow. Neither is touched on
the host: when the kernel allows it (`unshare --mount`), sshd runs in a private mount namespace
with an empty /run and, for password tests, a copy of /etc/shadow that gives root a test
password, bind-mounted over the real one for sshd's eyes only. Both mounts vanish with sshd.
Without namespaces /run/sshd is created (as the ssh service would) and passwords are unavailable.
"""
import contextlib
import functools
import os
import signal
import subprocess
import tempfile
import time

from ferrytest import free_port, port_open, run, wait_for

SSHD = "/usr/sbin/sshd"


def keygen(path, kind="ed25519"):
    """Writes a new private key without passphrase to `path` (public key: `path`.pub)."""
    run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "ferry-test", "-f", path], check=True,
        timeout=60)
    return path


@functools.lru_cache(maxsize=None)
def namespaces_available():
    """True when this process may create a mount namespace and mount in it."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        p = subprocess.run(["unshare", "--mount", "sh", "-c",
                            "mount -t tmpfs ferry-probe /run"],
                           capture_output=True, timeout=20)
        return p.returncode == 0
    return False


class Sshd:
    """One sshd on 127.0.0.1:`port`.

    `client_key` is a private key whose public half is authorized for root. `password`, when
    given, lets root log in with it (needs namespaces; see password_supported()). `sftp_args`
    are extra arguments of internal-sftp (["-R"]: a read-only server). `host_key_kind` picks the
    host key's algorithm."""

    def __init__(self, workdir=None, password=None, sftp_args=(), host_key_kind="ed25519",
                 port=None, extra_config=()):
        self.dir = tempfile.mkdtemp(prefix="sshd-", dir=workdir)
        os.chmod(self.dir, 0o755)
        self.port = port or free_port()
        self.password = password
        self.host_key = keygen(os.path.join(self.dir, "host_key"), host_key_kind)
        self.client_key = keygen(os.path.join(self.dir, "client_key"))
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        with open(self.client_key + ".pub") as src, open(self.authorized_keys, "w") as dst:
            dst.write(src.read())
        self.config = os.path.join(self.dir, "sshd_config")
        self.log_path = os.path.join(self.dir, "sshd.log")
        lines = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {os.path.join(self.dir, 'sshd.pid')}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PermitRootLogin yes",
            "UsePAM no",
            "StrictModes no",
            "PubkeyAuthentication yes",
            f"PasswordAuthentication {'yes' if password else 'no'}",
            "KbdInteractiveAuthentication no",
            "PermitEmptyPasswords no",
            "UseDNS no",
            "MaxStartups 100",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp " + " ".join(sftp_args),
            *extra_config,
        ]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self._log = None

    @staticmethod
    def password_supported():
        return namespaces_available()

    def _command(self):
        sshd = [SSHD, "-D", "-e", "-f", self.config]
        if not namespaces_available():
            if self.password:
                raise RuntimeError("password logins need a mount namespace (unshare --mount)")
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
            return sshd
        script = "mount -t tmpfs -o mode=755 ferry-sshd /run && mkdir -m 755 /run/sshd"
        if self.password:
            shadow = os.path.join(self.dir, "shadow")
            hashed = run(["openssl", "passwd", "-6", "-stdin"], input=self.password,
                         check=True, timeout=30).stdout.strip()
            with open("/etc/shadow") as src:
                entries = [line.rstrip("\n").split(":") for line in src if line.strip()]
            for e in entries:
                if e[0] == "root":
                    e[1] = hashed
            with open(shadow, "w") as dst:
                dst.write("".join(":".join(e) + "\n" for e in entries))
            os.chmod(shadow, 0o600)
            script += f" && mount --bind '{shadow}' /etc/shadow"
        # exec: sshd keeps the pid of unshare, so stop() signals sshd itself.
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                script + ' && exec "$@"', "sh", *sshd]

    def start(self, timeout=30):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._command(), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or port_open(self.port), timeout,
                 what=f"sshd to listen on {self.port}")
        if self.proc.poll() is not None:
            raise AssertionError(f"sshd exited with {self.proc.returncode}:\n{self.log_text()}")
        return self

    def _children(self):
        """Pids of the per-connection sshd processes (each in its own session)."""
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == self.proc.pid:
                        out.append(int(entry))
        return out

    def stop(self, timeout=10):
        if self.proc is None:
            return
        # Connections still open would outlive the listener: end them too.
        children = self._children()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._log.close()
        self.proc = None

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def known_hosts_line(self):
        """The known_hosts entry of this server's host key, as ssh-keyscan would print it."""
        with open(self.host_key + ".pub") as f:
            kind, blob = f.read().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

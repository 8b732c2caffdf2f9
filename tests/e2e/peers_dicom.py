"""DICOM destinations for end-to-end tests and benchmarks: DCMTK's storescp on a free loopback
port, writing what it receives into its own folder.

    with StoreScp(workdir, extra_args=["+B"]) as scp:      # bit-preserving
        ...send to 127.0.0.1:scp.port, called AE title scp.aet...
        scp.wait_files(3)

`association_profile()` writes a storescp association configuration (-xf) that accepts only
the given SOP classes and transfer syntaxes, for destinations that refuse something.
`record_calls=True` makes storescp note the calling and called AE title of every C-STORE.
Every wait is bounded; stop() (or leaving the `with`) always ends the process.
"""
import contextlib
import os
import subprocess

from ferrytest import TOOL_ENV, free_port, wait_for, stop_process_group


def listening(port):
    """True when a socket listens on TCP `port` (read from /proc, without connecting: a probe
    connection would show up in the peer's log as a failed association)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state = fields[1], fields[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return True
    return False


def association_profile(folder, sop_classes, transfer_syntaxes=("LocalEndianExplicit",
                                                                "LittleEndianImplicit"),
                        name="Test"):
    """Writes a storescp association configuration accepting `sop_classes` (DCMTK names such as
    "MRImageStorage") with `transfer_syntaxes` (DCMTK names such as "JPEGLossless:Non-
    hierarchical-1stOrderPrediction"), plus Verification; returns the storescp arguments that
    use it."""
    path = os.path.join(folder, f"storescp-{name}.cfg")
    lines = ["[[TransferSyntaxes]]", "[Accepted]"]
    lines += [f"TransferSyntax{i + 1} = {ts}" for i, ts in enumerate(transfer_syntaxes)]
    lines += ["[Uncompressed]", "TransferSyntax1 = LocalEndianExplicit",
              "TransferSyntax2 = LittleEndianImplicit"]
    lines += ["[[PresentationContexts]]", f"[{name}Contexts]",
              "PresentationContext1 = VerificationSOPClass\\Uncompressed"]
    lines += [f"PresentationContext{i + 2} = {sop}\\Accepted" for i, sop in enumerate(sop_classes)]
    lines += ["[[Profiles]]", f"[{name}]", f"PresentationContexts = {name}Contexts"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return ["-xf", path, name]


class StoreScp:
    """DCMTK storescp as a C-STORE destination. `extra_args` go to storescp before the port
    (e.g. ["+xs"] to accept JPEG lossless, ["+B"] for bit-preserving files, ["-pdu", "131072"],
    TLS options). `verbose` logs each association and C-STORE to log_path (tests read it;
    benchmarks may turn it off). Files land in `out`; `folder` (under `workdir`, named `name`)
    holds them and the log."""

    def __init__(self, workdir, port=None, extra_args=(), aet="DEST", name="storescp",
                 record_calls=False, verbose=True):
        self.port = port or free_port()
        self.aet = aet
        self.folder = os.path.join(workdir, name)
        self.out = os.path.join(self.folder, "out")
        os.makedirs(self.out, exist_ok=True)
        self.log_path = os.path.join(self.folder, "storescp.log")
        self.calls_path = os.path.join(self.folder, "calls.txt")
        self.args = ["storescp", *(["-v"] if verbose else []), "-aet", aet, "-od", self.out,
                     "-ta", "20", *extra_args]
        if record_calls:
            self.args += ["-xs", "-xcr", f"echo '#a #c' >> '{self.calls_path}'"]
        self.args.append(str(self.port))
        self.proc = None
        self._log = None

    def start(self, timeout=20):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=TOOL_ENV,
                                     start_new_session=True)
        wait_for(lambda: listening(self.port) or self.proc.poll() is not None, timeout,
                 what=f"storescp to listen on {self.port}")
        if self.proc.poll() is not None:
            raise AssertionError(f"storescp exited with {self.proc.returncode}:\n"
                                 f"{self.log_text()}")
        return self

    def stop(self, timeout=10):
        """Ends storescp (SIGTERM, then SIGKILL) and returns its exit code."""
        if self.proc is None:
            return None
        stop_process_group(self.proc, timeout)
        code = self.proc.returncode
        self._log.close()
        self.proc = None
        return code

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def files(self):
        """The files received so far, sorted by path."""
        out = []
        for root, _, names in os.walk(self.out):
            out += [os.path.join(root, n) for n in names if not n.startswith(".")]
        return sorted(out)

    def wait_files(self, count, timeout=30):
        """Waits until at least `count` files arrived; returns files()."""
        return wait_for(lambda: len(self.files()) >= count and self.files(), timeout,
                        what=f"{count} file(s) at storescp")

    def calls(self):
        """[(calling AE, called AE)] per C-STORE received (needs record_calls=True)."""
        if not os.path.exists(self.calls_path):
            return []
        with open(self.calls_path) as f:
            return [tuple(w.strip('"') for w in line.split()) for line in f if line.strip()]

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

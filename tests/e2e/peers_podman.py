"""Podman as the container engine of processor tests and benchmarks: `podman system service`
serving the Docker Engine API on a unix socket in the test's folder, with the test images that
tests/images/build-images.sh builds from Debian packages (no registry is needed).

    with PodmanService(workdir) as podman:
        ...config {"processor": {"docker_socket": podman.socket}}...
        podman.containers(label="ferry.data=/path")   # what is left

Podman's settings come from tests/images/containers.conf (CONTAINERS_CONF), so the machine's own
configuration is not touched. stop() (or leaving the `with`) ends the service.
"""
import json
import os
import socket
import subprocess
import http.client

from ferrytest import PeerProcess, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "..", "images")
CONTAINERS_CONF = os.path.join(IMAGES, "containers.conf")
MODULE_IMAGE = "localhost/ferry-test-mod:latest"
MAP_IMAGE = "localhost/ferry-test-map:latest"  # a MONAI Application Package stand-in
ENV = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF)


def build_images():
    """Builds the test images if they are missing (a minute the first time, then instant)."""
    p = subprocess.run(["bash", os.path.join(IMAGES, "build-images.sh")], capture_output=True,
                       text=True, timeout=900, env=ENV)
    if p.returncode != 0:
        raise AssertionError(f"cannot build the test images:\n{p.stdout}\n{p.stderr}")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class PodmanService(PeerProcess):
    def __init__(self, folder):
        self.folder = folder
        self.socket = os.path.join(folder, "podman.sock")
        self.log_path = os.path.join(folder, "podman.log")

    def start(self, timeout=30):
        build_images()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", "unix://" + self.socket],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env=ENV)
        return self.wait_started(self.ping, "podman system service", timeout)

    def request(self, method, path, body=None, timeout=30):
        conn = _UnixConnection(self.socket, timeout)
        try:
            conn.request(method, "/v1.41" + path,
                         body=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def ping(self):
        try:
            return self.request("GET", "/_ping", timeout=2)[0] == 200
        except OSError:
            return False

    def containers(self, label):
        """Ids of the containers (running or not) with `label` ("key=value")."""
        filters = json.dumps({"label": [label]})
        status, body = self.request("GET", "/containers/json?all=1&filters=" +
                                    __import__("urllib.parse").parse.quote(filters))
        assert status == 200, body
        return [c["Id"] for c in json.loads(body)]

    def remove_containers(self, label):
        for cid in self.containers(label):
            self.request("DELETE", f"/containers/{cid}?force=1")

    def run(self, args, timeout=120):
        """`podman run --rm ARGS`, with the tests' settings; returns the CompletedProcess."""
        return subprocess.run(["podman", "run", "--rm"] + args, capture_output=True, text=True,
                              timeout=timeout, env=ENV)

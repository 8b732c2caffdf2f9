"""s3rver as a test peer: an S3-compatible server (npm `s3rver`, installed into
tests/peers/node_modules by scripts/install-deps.sh) on a free loopback port, storing into its
own temporary folder.

    with S3rverPeer(workdir, buckets=["archive"]) as s3:     # or .start() / .stop()
        s3.endpoint_url                                        # http://127.0.0.1:<port>
        s3.keys("archive")                                     # every key, sorted
        s3.get("archive", key)                                 # the object's bytes

s3rver knows one account, access key id S3RVER with secret S3RVER (ACCESS_KEY_ID,
SECRET_ACCESS_KEY). It refuses unknown access key ids (403 InvalidAccessKeyId) but does not
verify Signature Version 4 signatures; ferry's signer is checked against AWS's published
examples in its unit tests. The helper's own requests are unsigned, which s3rver allows.
"""
import contextlib
import os
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from ferrytest import PeerProcess, free_port

S3RVER_BIN = os.environ.get("S3RVER_BIN", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "../peers/node_modules/.bin/s3rver"))
ACCESS_KEY_ID = "S3RVER"
SECRET_ACCESS_KEY = "S3RVER"


def _local(tag):
    """An XML tag without its namespace (s3rver's differs from AWS's)."""
    return tag.rsplit("}", 1)[-1]


def _texts(root, name):
    return [e.text or "" for e in root.iter() if _local(e.tag) == name]


def s3rver_available():
    """True when s3rver is installed (tests skip otherwise: run scripts/install-deps.sh)."""
    return os.access(S3RVER_BIN, os.X_OK)


class S3rverPeer(PeerProcess):
    """One s3rver process. `folder` must exist; its data go to folder/s3rver-<port>/. With
    `key_file` and `cert_file` (PEM) it serves https."""

    def __init__(self, folder, buckets=(), key_file=None, cert_file=None):
        self.tls = (key_file, cert_file) if key_file else None
        self.port = free_port()
        self.buckets = list(buckets)
        self.dir = os.path.join(folder, f"s3rver-{self.port}")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data, exist_ok=True)
        self.log_path = os.path.join(self.dir, "s3rver.log")
        self.proc = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout=30):
        cmd = [S3RVER_BIN, "--directory", self.data, "--address", "127.0.0.1",
               "--port", str(self.port), "--no-vhost-buckets"]
        for bucket in self.buckets:
            cmd += ["--configure-bucket", bucket]
        if self.tls:
            cmd += ["--key", self.tls[0], "--cert", self.tls[1]]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, start_new_session=True)
        return self.wait_started(self._answers, f"s3rver on port {self.port}", timeout)

    stop_timeout = 15

    @property
    def endpoint_url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _open(self, req, timeout):
        # The helper trusts its own server; ferry is what the tests check.
        context = ssl._create_unverified_context() if self.tls else None  # noqa: S323
        return urllib.request.urlopen(req, timeout=timeout, context=context)

    # -- S3 requests (unsigned) --------------------------------------------------------------

    def request(self, method, path, body=None, timeout=30):
        """Returns (status, body bytes); HTTP errors are returned, not raised."""
        req = urllib.request.Request(self.endpoint_url + path, data=body, method=method)
        try:
            with self._open(req, timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _answers(self):
        with contextlib.suppress(OSError):
            return self.request("GET", "/", timeout=2)[0] == 200
        return False

    def create_bucket(self, bucket):
        status, body = self.request("PUT", "/" + urllib.parse.quote(bucket))
        if status != 200:
            raise AssertionError(f"creating bucket {bucket}: HTTP {status}: {body[:300]!r}")

    def keys(self, bucket, prefix=""):
        """Every key in `bucket` (under `prefix`), sorted."""
        keys, token = [], None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            status, body = self.request(
                "GET", f"/{urllib.parse.quote(bucket)}?{urllib.parse.urlencode(query)}")
            if status != 200:
                raise AssertionError(f"listing {bucket}: HTTP {status}: {body[:300]!r}")
            root = ET.fromstring(body)
            keys += _texts(root, "Key")
            token = next(iter(_texts(root, "NextContinuationToken")), None)
            if _texts(root, "IsTruncated") != ["true"] or not token:
                return sorted(keys)

    def get(self, bucket, key):
        """The bytes of one object; AssertionError when it does not exist."""
        status, body = self.request(
            "GET", f"/{urllib.parse.quote(bucket)}/{urllib.parse.quote(key)}")
        if status != 200:
            raise AssertionError(f"GET {bucket}/{key}: HTTP {status}: {body[:300]!r}")
        return body

    def head(self, bucket, key):
        """The response headers of one object (Content-Type, Content-Length, ETag)."""
        req = urllib.request.Request(
            f"{self.endpoint_url}/{urllib.parse.quote(bucket)}/{urllib.parse.quote(key)}",
            method="HEAD")
        with self._open(req, 30) as r:
            return dict(r.headers)

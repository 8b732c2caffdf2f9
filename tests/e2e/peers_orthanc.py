"""Orthanc as a test peer: Debian's /usr/sbin/Orthanc with the DICOMweb plugin, on free loopback
HTTP and DICOM ports, with its own storage folder and JSON config.

    with OrthancPeer(workdir) as orthanc:          # or .start() / .stop()
        orthanc.dicomweb_url                        # http://127.0.0.1:<port>/dicom-web
        orthanc.dicom_port, orthanc.aet             # a C-STORE destination
        orthanc.instances()                         # Orthanc ids of the stored instances
        orthanc.sop_instance_uids()                 # their SOP Instance UIDs
        orthanc.instance_file(orthanc_id)           # the stored bytes

`users={"ferry": "secret"}` turns on HTTP Basic authentication (AuthenticationEnabled with
RegisteredUsers); the helper's own REST calls then log in as the first user. Waits are bounded;
stop() (or leaving the `with` block) terminates Orthanc and keeps its log in the work folder.
"""
import base64
import contextlib
import json
import os
import subprocess
import urllib.error
import urllib.request

from ferrytest import PeerProcess, free_port, wait_for

ORTHANC_BIN = os.environ.get("ORTHANC_BIN", "/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = os.environ.get("ORTHANC_DICOMWEB_PLUGIN",
                                 "/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_available():
    """True when Orthanc and its DICOMweb plugin are installed (tests skip otherwise)."""
    return os.access(ORTHANC_BIN, os.X_OK) and os.path.exists(DICOMWEB_PLUGIN)


class OrthancPeer(PeerProcess):
    """One Orthanc process. `folder` must exist; Orthanc's files go to folder/orthanc-<port>/."""

    def __init__(self, folder, users=None, aet="ORTHANC", dicomweb=True, extra_config=None):
        self.users = dict(users or {})
        self.aet = aet
        self.http_port = free_port()
        self.dicom_port = free_port()
        while self.dicom_port == self.http_port:
            self.dicom_port = free_port()
        self.dir = os.path.join(folder, f"orthanc-{self.http_port}")
        os.makedirs(os.path.join(self.dir, "storage"), exist_ok=True)
        self.config_path = os.path.join(self.dir, "orthanc.json")
        self.log_path = os.path.join(self.dir, "orthanc.log")
        config = {
            "Name": "ferry-e2e",
            "StorageDirectory": os.path.join(self.dir, "storage"),
            "IndexDirectory": os.path.join(self.dir, "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": aet,
            "DicomCheckCalledAet": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "HttpDescribeErrors": True,
            "Plugins": [DICOMWEB_PLUGIN] if dicomweb else [],
            "DicomWeb": {"Enable": dicomweb, "Root": "/dicom-web/"},
        }
        config.update(extra_config or {})
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=2)
        self.proc = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout=60):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([ORTHANC_BIN, self.config_path], stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.dir,
                                     start_new_session=True,
                                     env=dict(os.environ, TCP_NODELAY="1"))
        return self.wait_started(self._answers, f"Orthanc's REST API on port {self.http_port}",
                                 timeout)

    stop_timeout = 30

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self):
        return f"{self.url}/dicom-web"

    # -- REST --------------------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=30, auth=True):
        """Returns (status, body bytes); HTTP errors are returned, not raised."""
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=dict(headers or {}))
        if auth and self.users:
            user, password = next(iter(self.users.items()))
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get(self, path, timeout=30):
        status, body = self.request("GET", path, timeout=timeout)
        if status != 200:
            raise AssertionError(f"GET {path}: HTTP {status}: {body[:500]!r}")
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def _answers(self):
        with contextlib.suppress(OSError, ValueError):
            return self.request("GET", "/system", timeout=2)[0] == 200
        return False

    def instances(self):
        """Orthanc ids of every stored instance."""
        return self.get("/instances")

    def sop_instance_uids(self):
        """The SOP Instance UIDs of every stored instance, sorted."""
        uids = []
        for orthanc_id in self.instances():
            tags = self.get(f"/instances/{orthanc_id}/simplified-tags")
            uids.append(tags["SOPInstanceUID"])
        return sorted(uids)

    def instance_file(self, orthanc_id):
        """The stored DICOM file of one instance."""
        return self.get(f"/instances/{orthanc_id}/file")

    def file_by_sop_instance_uid(self):
        """{SOP Instance UID: stored bytes} of every instance."""
        out = {}
        for orthanc_id in self.instances():
            tags = self.get(f"/instances/{orthanc_id}/simplified-tags")
            out[tags["SOPInstanceUID"]] = self.instance_file(orthanc_id)
        return out

    def statistics(self):
        return self.get("/statistics")

    def wait_instances(self, count, timeout=30):
        """Waits until Orthanc holds at least `count` instances; returns their ids."""
        def enough():
            ids = self.instances()
            return ids if len(ids) >= count else None
        return wait_for(enough, timeout, interval=0.1, what=f"{count} instance(s) in Orthanc")

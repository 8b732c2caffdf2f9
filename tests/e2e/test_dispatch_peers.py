"""The whole pipeline (`ferry serve`: receiver, router, dispatcher) delivering to real peers:
DCMTK storescp and dcmrecv, Orthanc over DICOM and DICOMweb (checked through its REST API).

Covers a destination that is down and comes back, one that refuses the SOP class, one that
accepts only uncompressed syntaxes receiving a JPEG series, the dispatcher killed with SIGKILL in
the middle of a transfer, failover and round-robin groups, streaming dispatch (a series is sent
while it arrives; `streaming: false` waits for it), ordered delivery, and the journal events the
dispatcher writes on the way."""
import glob
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1, generate_uid

from ferrytest import (FERRY_BIN, TOOL_ENV, FerryTestCase, child_pids, dataset_bytes, free_port,
                       journal_time, run, storescu, wait_for)
from peers_dicom import StoreScp, association_profile
from peers_orthanc import OrthancPeer, orthanc_available

FAST_RETRY = {"initial_delay": 0.3, "multiplier": 2, "max_delay": 1, "max_attempts": 50}
# Series that the tests send in several associations: the router must not take the pause
# between them for the end of the series. Long enough for a loaded machine, short enough to
# keep the tests quick (a series completes `SLOW_GRACE` after its last association).
SLOW_GRACE = 4


def sop_uid(path):
    return pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID


def sop_uids(paths):
    return {sop_uid(p) for p in paths}


def readable_uids(paths):
    """SOP Instance UIDs of `paths`, or None while one of them cannot be parsed yet (a peer
    that is still writing it)."""
    try:
        return sop_uids(paths)
    except Exception:  # noqa: BLE001 - any parse error: not written completely yet
        return None


def dicom_target(port, aet="DEST", **kw):
    return {"target_type": "dicom", "ip": "127.0.0.1", "port": port, "aet_target": aet,
            "timeout": 20, **kw}


class DcmRecv(StoreScp):
    """DCMTK dcmrecv as the destination, accepting every storage SOP class (DCMTK's "Default"
    profile); the same helpers as StoreScp (files, waits, log)."""

    def __init__(self, workdir, name="dcmrecv", aet="DEST", extra_args=()):
        super().__init__(workdir, name=name, aet=aet)
        self.args = ["dcmrecv", "-v", "-aet", aet, "-od", self.out, "-ta", "20",
                     "-xf", "/etc/dcmtk/storescp.cfg", "Default", *extra_args, str(self.port)]


class DispatchPeersTest(FerryTestCase):

    # -- peers and ferry ---------------------------------------------------------------------

    def storescp(self, name, **kw):
        scp = StoreScp(self.workdir, name=name, **kw)
        self.addCleanup(scp.stop)
        return scp.start()

    def orthanc(self):
        if not orthanc_available():
            self.skipTest("Orthanc with the DICOMweb plugin is not installed")
        peer = OrthancPeer(self.workdir)
        self.addCleanup(peer.stop)
        return peer.start()

    def serve(self, targets, rules, groups=None, dispatcher=None, supervisor=None):
        extra = {"targets": targets, "rules": rules,
                 "router": {"series_complete_grace": 0.3},
                 "dispatcher": {"retry": FAST_RETRY, **(dispatcher or {})}}
        if groups:
            extra["target_groups"] = groups
        if supervisor:
            extra["supervisor"] = supervisor
        return self.ferry(mode="serve", extra=extra).start()

    def sender(self, port, files):
        """storescu in the background (one association); killed at the end of the test."""
        proc = subprocess.Popen(["storescu", "-aec", "FERRY", "-nh", "127.0.0.1", str(port),
                                 *files], env=TOOL_ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        self.addCleanup(stop)
        return proc

    def send(self, f, files, extra=()):
        """Sends `files` to ferry in one association; every one must be stored."""
        p = storescu(f.port, files, extra=("-v", *extra))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual((p.stdout + p.stderr).count("Received Store Response (Success)"),
                         len(files), p.stdout + p.stderr)

    # -- spool and journal -------------------------------------------------------------------

    def tasks(self, f, stage):
        """{task id: task.json} of the tasks in a stage folder (outgoing, success, error, ...)."""
        out = {}
        for path in glob.glob(os.path.join(f.data, stage, "*", "task.json")):
            try:
                with open(path) as fh:
                    out[os.path.basename(os.path.dirname(path))] = json.load(fh)
            except (OSError, ValueError):
                continue  # moved or rewritten meanwhile
        return out

    def task_of(self, f, stage, series_uid, timeout=30):
        """Waits for the task of `series_uid` in `stage`; returns (task id, task.json)."""
        def find():
            for task_id, task in self.tasks(f, stage).items():
                if task["info"]["uid"] == series_uid:
                    return task_id, task
            return None
        return wait_for(find, timeout, what=f"the task of series {series_uid} in {stage}/")

    def events(self, f, kind=None, task_id=None):
        return [e for e in f.events("dispatcher")
                if (kind is None or e["event"] == kind)
                and (task_id is None or e.get("task_id") == task_id)]

    def completed(self, f, task_id):
        """The task.completed events of a task seen in success/ (journalled just after the
        move there)."""
        return wait_for(lambda: self.events(f, "task.completed", task_id), 10,
                        what=f"task.completed of {task_id}")

    def wait_delivered(self, peer, files, timeout=30):
        """Waits until every instance of `files` is at the storescp/dcmrecv `peer` (at least
        once); returns the SOP Instance UIDs of everything there."""
        expected = sop_uids(files)
        return wait_for(lambda: (lambda u: u if u is not None and expected <= u else None)(
            readable_uids(peer.files())), timeout,
            what=f"{len(expected)} instances at {peer.folder}")

    def store_order(self, scp):
        """SOP Instance UIDs in the order storescp stored them (from its log)."""
        return re.findall(r"storing DICOM file: .*/[A-Z]+\.([0-9.]+)\s*$", scp.log_text(),
                          re.MULTILINE)

    def dataset_bytes_of(self, data):
        """dataset_bytes() of a file given as bytes (a peer's REST answer)."""
        path = self.file("peer-file.dcm")
        with open(path, "wb") as fh:
            fh.write(data)
        return dataset_bytes(path)

    # -- plain delivery ----------------------------------------------------------------------

    def test_dcmrecv_destination_gets_the_series_and_the_journal_records_it(self):
        dest = DcmRecv(self.workdir, extra_args=["+B"])  # bit-preserving
        self.addCleanup(dest.stop)
        dest.start()
        f = self.serve({"pacs": dicom_target(dest.port)}, {"all": {"rule": "True",
                                                                   "target": "pacs"}})
        series_uid, files = self.make_series(6)
        self.send(f, files)
        task_id, task = self.task_of(f, "success", series_uid)
        self.assertEqual(task["dispatch"]["status"]["pacs"]["state"], "complete")
        self.assertEqual(task["ferry"]["dispatch"]["attempts"], 1)
        self.assertEqual(sorted(task["ferry"]["dispatch"]["delivered"]["pacs"]),
                         sorted(u + ".dcm" for u in sop_uids(files)))
        self.assertEqual(self.wait_delivered(dest, files), sop_uids(files))
        by_uid = {sop_uid(p): p for p in dest.files()}
        for src in files:
            self.assertEqual(dataset_bytes(by_uid[sop_uid(src)]), dataset_bytes(src), src)

        # The journal: begin, progress while streaming, complete, task.completed.
        begins = self.events(f, "dispatch.begin", task_id)
        self.assertTrue(begins)
        self.assertEqual(begins[0]["details"]["target"], "pacs")
        self.assertEqual(begins[0]["details"]["attempt"], 1)
        self.assertTrue(begins[0]["details"]["streaming"])
        self.assertEqual(begins[0]["series_uid"], series_uid)
        sent = [e for e in self.events(f, task_id=task_id)
                if e["event"] in ("dispatch.progress", "dispatch.complete")]
        self.assertEqual(sent[-1]["event"], "dispatch.complete")
        for e in sent:
            self.assertEqual(e["details"]["attempt"], 1)
            self.assertEqual(e["details"]["target"], "pacs")
            self.assertGreaterEqual(e["details"]["duration_ms"], 0)
        self.assertEqual(sum(e["details"]["instances"] for e in sent), 6)
        stored = glob.glob(os.path.join(f.data, "success", task_id, "*.dcm"))
        self.assertEqual(sum(e["details"]["bytes"] for e in sent),
                         sum(os.path.getsize(p) for p in stored))
        completed = self.completed(f, task_id)
        self.assertEqual(len(completed), 1)
        self.assertEqual(completed[0]["details"]["attempt"], 1)
        self.assertLessEqual(journal_time(sent[-1]), journal_time(completed[0]))
        self.assertEqual(self.events(f, "dispatch.failed"), [])

    def test_orthanc_receives_over_dicom_and_dicomweb(self):
        orthanc = self.orthanc()
        f = self.serve({"orthanc-dicom": dicom_target(orthanc.dicom_port, aet=orthanc.aet),
                        "orthanc-web": {"target_type": "dicomweb", "url": orthanc.dicomweb_url,
                                        "batch_size": 2}},
                       {"ct": {"rule": "@Modality@ == 'CT'", "target": "orthanc-dicom"},
                        "mr": {"rule": "@Modality@ == 'MR'", "target": "orthanc-web"}})
        ct_uid, ct = self.make_series(4, modality="CT")
        mr_uid, mr = self.make_series(5, modality="MR")
        self.send(f, ct + mr)
        ct_task, _ = self.task_of(f, "success", ct_uid)
        mr_task, _ = self.task_of(f, "success", mr_uid)
        stored = orthanc.file_by_sop_instance_uid()
        self.assertEqual(set(stored), sop_uids(ct + mr))
        for src in ct + mr:
            self.assertEqual(self.dataset_bytes_of(stored[sop_uid(src)]), dataset_bytes(src),
                             src)
        # STOW-RS stores the file ferry received, byte for byte.
        for path in glob.glob(os.path.join(f.data, "success", mr_task, "*.dcm")):
            with open(path, "rb") as fh:
                self.assertEqual(stored[os.path.basename(path)[:-4]], fh.read(), path)
        series = {s["MainDicomTags"]["SeriesInstanceUID"]: len(s["Instances"])
                  for s in orthanc.get("/series?expand")}
        self.assertEqual(series, {ct_uid: 4, mr_uid: 5})
        targets = {e["task_id"]: e["details"]["target"]
                   for e in self.events(f, "dispatch.complete")}
        self.assertEqual(targets, {ct_task: "orthanc-dicom", mr_task: "orthanc-web"})

    # -- failures ----------------------------------------------------------------------------

    def test_destination_down_is_retried_until_it_comes_back(self):
        port = free_port()  # storescp starts on it later
        f = self.serve({"pacs": dicom_target(port)}, {"all": {"rule": "True", "target": "pacs"}})
        series_uid, files = self.make_series(3)
        self.send(f, files)
        retries = wait_for(lambda: len(self.events(f, "dispatch.retry_scheduled")) >= 2 and
                           self.events(f, "dispatch.retry_scheduled"), 30,
                           what="two scheduled retries")
        self.assertEqual(self.tasks(f, "success"), {})
        failed = self.events(f, "dispatch.failed")
        self.assertGreaterEqual(len(failed), 2)
        for e in failed:
            self.assertFalse(e["details"]["permanent"])
            self.assertIn(f"connection refused at 127.0.0.1:{port}", e["details"]["reason"])
        self.assertGreater(retries[0]["details"]["delay_s"], 0)
        self.assertLessEqual(retries[-1]["details"]["delay_s"], 1.0)  # max_delay

        dest = self.storescp("late", port=port)
        task_id, task = self.task_of(f, "success", series_uid)
        self.assertEqual(self.wait_delivered(dest, files), sop_uids(files))
        attempts = task["ferry"]["dispatch"]["attempts"]
        self.assertGreaterEqual(attempts, 3)
        complete = self.events(f, "dispatch.complete", task_id)
        self.assertEqual(complete[-1]["details"]["attempt"], attempts)
        self.assertEqual(self.completed(f, task_id)[0]["details"]["attempt"], attempts)
        self.assertEqual(self.events(f, "task.failed"), [])

    def test_refused_sop_class_goes_to_error_and_is_not_retried(self):
        dest = self.storescp("mr-only",
                             extra_args=association_profile(self.workdir, ["MRImageStorage"]))
        f = self.serve({"pacs": dicom_target(dest.port)},
                       {"ct": {"rule": "@Modality@ == 'CT'", "target": "pacs",
                               "series_complete_grace": SLOW_GRACE},
                        "mr": {"rule": "@Modality@ == 'MR'", "target": "pacs"}})
        ct_uid, ct = self.make_series(4, modality="CT")
        self.send(f, ct[:2])
        failed = wait_for(lambda: self.events(f, "dispatch.failed"), 30,
                          what="the refusal of the CT series")
        task_id = failed[0]["task_id"]
        self.assertTrue(failed[0]["details"]["permanent"])
        self.assertIn("destination refused SOP class CT Image Storage",
                      failed[0]["details"]["reason"])
        # The destination works for what it accepts: an MR series is delivered meanwhile.
        mr_uid, mr = self.make_series(2, modality="MR")
        self.send(f, mr)
        self.task_of(f, "success", mr_uid)
        self.assertEqual(self.wait_delivered(dest, mr), sop_uids(mr))
        # The rest of the CT series arrives; its task then goes to error/ with all of it.
        rest_sent = time.time()
        self.send(f, ct[2:])
        _, task = self.task_of(f, "error", ct_uid)
        self.assertEqual(task["ferry"]["dispatch"]["attempts"], 1)
        self.assertIn("destination refused SOP class CT Image Storage",
                      task["ferry"]["dispatch"]["failure"])
        self.assertEqual(task["dispatch"]["status"]["pacs"]["state"], "error")
        self.assertEqual(task["info"]["fail_stage"], "DISPATCHING")
        self.assertEqual({os.path.basename(p)[:-4] for p in
                          glob.glob(os.path.join(f.data, "error", task_id, "*.dcm"))},
                         sop_uids(ct))
        self.assertEqual(os.listdir(f.incoming()), [])
        # Not retried: one attempt, one failure, nothing scheduled.
        task_failed = self.events(f, "task.failed", task_id)
        self.assertEqual(len(task_failed), 1)
        self.assertTrue(task_failed[0]["details"]["permanent"])
        self.assertGreater(journal_time(task_failed[0]), rest_sent)
        self.assertEqual(len(self.events(f, "dispatch.failed", task_id)), 1)
        self.assertEqual(len(self.events(f, "dispatch.begin", task_id)), 1)
        self.assertEqual(self.events(f, "dispatch.retry_scheduled"), [])
        self.assertEqual(sop_uids(dest.files()), sop_uids(mr))

    def test_jpeg_series_is_decoded_for_an_uncompressed_only_peer(self):
        dest = self.storescp("uncompressed")  # storescp's default: uncompressed syntaxes only
        f = self.serve({"pacs": dicom_target(dest.port)}, {"all": {"rule": "True",
                                                                   "target": "pacs"}})
        series_uid, raw = self.make_series(3, rows=64, cols=64)
        jpeg_folder = self.file("jpeg")
        os.makedirs(jpeg_folder)
        jpeg = []
        for src in raw:
            out = os.path.join(jpeg_folder, os.path.basename(src))
            run(["dcmcjpeg", src, out], check=True, timeout=60)
            jpeg.append(out)
        self.send(f, jpeg, extra=["-xs"])  # -xs: propose JPEG lossless
        task_id, _ = self.task_of(f, "success", series_uid)
        # ferry kept what it received ...
        for path in glob.glob(os.path.join(f.data, "success", task_id, "*.dcm")):
            self.assertEqual(pydicom.dcmread(path).file_meta.TransferSyntaxUID, JPEGLosslessSV1)
        # ... and the peer got the same pixels, uncompressed.
        self.assertEqual(self.wait_delivered(dest, raw), sop_uids(raw))
        original = {sop_uid(p): pydicom.dcmread(p) for p in raw}
        for path in dest.files():
            ds = pydicom.dcmread(path)
            self.assertEqual(ds.file_meta.TransferSyntaxUID, ExplicitVRLittleEndian)
            self.assertEqual(ds.PixelData, original[ds.SOPInstanceUID].PixelData)
            self.assertEqual(ds.PatientName, original[ds.SOPInstanceUID].PatientName)

    def test_dispatcher_killed_mid_transfer_resumes_and_delivers_everything(self):
        count = 240
        dest = self.storescp("big")
        f = self.serve({"pacs": dicom_target(dest.port)}, {"all": {"rule": "True",
                                                                   "target": "pacs"}},
                       supervisor={"restart_backoff_initial": 1})
        series_uid, files = self.make_series(count, rows=256, cols=256)  # 128 KB each
        dispatcher = wait_for(lambda: child_pids(f.proc.pid, "dispatcher"), 15,
                              what="the dispatcher process")
        self.assertEqual(len(dispatcher), 1, dispatcher)
        sender = self.sender(f.port, files)
        claimed = os.path.join(f.data, "tmp", "dispatcher")
        # Kill once a good part arrived at the destination, while the task is being sent.
        wait_for(lambda: len(dest.files()) >= count // 5 and os.listdir(claimed), 60,
                 interval=0.005, what=f"{count // 5} instances at the destination")
        os.kill(dispatcher[0], signal.SIGKILL)
        at_kill = len(dest.files())
        self.assertLess(at_kill, count, "the transfer ended before the kill")

        restarted = wait_for(lambda: [p for p in child_pids(f.proc.pid, "dispatcher")
                                      if p != dispatcher[0]], 30,
                             what="the supervisor to restart the dispatcher")
        self.assertEqual(len(restarted), 1, restarted)
        output, _ = sender.communicate(timeout=120)
        self.assertEqual(sender.returncode, 0, output)
        task_id, task = self.task_of(f, "success", series_uid, timeout=120)
        self.assertEqual(self.wait_delivered(dest, files), sop_uids(files))
        recovered = self.events(f, "task.recovered", task_id)
        self.assertEqual(len(recovered), 1, self.events(f))
        self.assertEqual(recovered[0]["pid"], restarted[0])
        self.assertEqual(len(self.completed(f, task_id)), 1)
        self.assertEqual(os.listdir(claimed), [])
        print(f"\nkilled with {at_kill} of {count} instances at the destination; "
              f"{len(dest.files())} files there at the end")

    # -- groups ------------------------------------------------------------------------------

    def test_failover_group_skips_a_destination_that_is_down(self):
        down = free_port()
        backup = self.storescp("backup")
        f = self.serve({"primary": dicom_target(down), "backup": dicom_target(backup.port)},
                       {"all": {"rule": "True", "target": "pacs"}},
                       groups={"pacs": {"policy": "failover", "targets": ["primary",
                                                                          "backup"]}})
        series_uid, files = self.make_series(3)
        self.send(f, files)
        task_id, task = self.task_of(f, "success", series_uid)
        self.assertEqual(self.wait_delivered(backup, files), sop_uids(files))
        self.assertEqual(task["dispatch"]["status"]["pacs"]["state"], "complete")
        failed = self.events(f, "dispatch.failed", task_id)
        self.assertTrue(failed)
        self.assertEqual({e["details"]["target"] for e in failed}, {"primary"})
        self.assertFalse(any(e["details"]["permanent"] for e in failed))
        complete = self.events(f, "dispatch.complete", task_id)
        self.assertEqual([e["details"]["target"] for e in complete], ["backup"])
        self.assertEqual(complete[0]["details"]["destination"], "pacs")
        self.assertEqual(self.events(f, "dispatch.retry_scheduled"), [])

    def test_round_robin_group_alternates_and_keeps_each_series_whole(self):
        a, b = self.storescp("rr-a"), self.storescp("rr-b")
        f = self.serve({"a": dicom_target(a.port), "b": dicom_target(b.port)},
                       {"all": {"rule": "True", "target": "both",
                                "series_complete_grace": SLOW_GRACE}},
                       groups={"both": {"policy": "round_robin", "targets": ["a", "b"]}})
        first_uid, first = self.make_series(6)
        others = [self.make_series(2) for _ in range(3)]
        # The first series arrives in two parts: its stream pauses (parks) in between and goes
        # on where it started when the rest comes.
        self.send(f, first[:3])
        wait_for(lambda: self.events(f, "dispatch.progress"), 30,
                 what="the stream of the first part to pause")
        self.send(f, first[3:])
        self.send(f, others[0][1])
        self.send(f, others[1][1] + others[2][1])
        for uid, _ in [(first_uid, first)] + others:
            self.task_of(f, "success", uid)
        at_a, at_b = readable_uids(a.files()), readable_uids(b.files())
        for uid, files in [(first_uid, first)] + others:
            uids = sop_uids(files)
            self.assertTrue(uids <= at_a and not uids & at_b or uids <= at_b and not uids & at_a,
                            f"series {uid} split: {len(uids & at_a)} at a, "
                            f"{len(uids & at_b)} at b")
        per_member = {"a": 0, "b": 0}
        for uid, _ in [(first_uid, first)] + others:
            task_id, _ = self.task_of(f, "success", uid)
            complete = self.events(f, "dispatch.complete", task_id)
            per_member[complete[-1]["details"]["target"]] += 1
        self.assertEqual(per_member, {"a": 2, "b": 2})

    # -- streaming ---------------------------------------------------------------------------

    def test_streaming_sends_while_the_series_arrives_and_streaming_false_waits(self):
        live, batch = self.storescp("live"), self.storescp("batch")
        f = self.serve({"live": dicom_target(live.port), "batch": dicom_target(batch.port)},
                       {"ct": {"rule": "@Modality@ == 'CT'", "target": "live",
                               "series_complete_grace": SLOW_GRACE},
                        "mr": {"rule": "@Modality@ == 'MR'", "target": "batch",
                               "streaming": False, "series_complete_grace": SLOW_GRACE}})
        ct_uid, ct = self.make_series(8, modality="CT")
        mr_uid, mr = self.make_series(8, modality="MR")
        # First halves, in two associations (MR first).
        self.send(f, mr[:4])
        self.send(f, ct[:4])
        # The streamed half reaches its destination before the rest is even sent ...
        self.wait_delivered(live, ct[:4])
        # ... while the other series waits for its completion, and no task is complete.
        self.assertEqual(batch.files(), [])
        self.assertEqual(self.tasks(f, "success"), {})
        self.assertEqual(self.events(f, "task.completed"), [])
        streaming_task, _ = self.task_of(f, os.path.join("tmp", "dispatcher"), ct_uid)
        second_half_sent = time.time()
        self.send(f, ct[4:] + mr[4:])
        ct_task, ct_json = self.task_of(f, "success", ct_uid)
        mr_task, mr_json = self.task_of(f, "success", mr_uid)
        self.assertEqual(ct_task, streaming_task)
        self.assertTrue(ct_json["ferry"]["streaming"])
        self.assertNotIn("streaming", mr_json["ferry"])
        self.assertEqual(self.wait_delivered(live, ct), sop_uids(ct))
        self.assertEqual(self.wait_delivered(batch, mr), sop_uids(mr))
        # One task per series, completed only after its last instance arrived.
        self.assertEqual(len(self.tasks(f, "success")), 2)
        for task_id in (ct_task, mr_task):
            completed = self.completed(f, task_id)
            self.assertEqual(len(completed), 1)
            self.assertGreater(journal_time(completed[0]), second_half_sent)
        # Each series was complete once, with all its instances (the pause did not end it).
        for uid in (ct_uid, mr_uid):
            complete = [e for e in f.events("router") if e["event"] == "series.complete"
                        and e["series_uid"] == uid]
            self.assertEqual([e["details"]["instances"] for e in complete], [8], uid)
        # The batch task was created for the complete series and sent after its second half.
        self.assertEqual(mr_json["ferry"]["complete_reason"], "associations ended")
        begins = self.events(f, "dispatch.begin", mr_task)
        self.assertEqual(len(begins), 1)
        self.assertFalse(begins[0]["details"]["streaming"])
        self.assertGreater(journal_time(begins[0]), second_half_sent)
        self.assertGreater(min(os.path.getmtime(p) for p in batch.files()), second_half_sent)

    def test_a_waiting_stream_does_not_hold_the_only_worker(self):
        dest = self.storescp("dest")
        f = self.serve({"pacs": dicom_target(dest.port)},
                       {"slow": {"rule": "@Modality@ == 'CT'", "target": "pacs",
                                 "series_complete_grace": 60},
                        "fast": {"rule": "@Modality@ == 'MR'", "target": "pacs"}},
                       dispatcher={"workers": 1})
        slow_uid, slow = self.make_series(4, modality="CT")
        self.send(f, slow[:2])
        self.wait_delivered(dest, slow[:2])
        fast_uid, fast = self.make_series(2, modality="MR")
        self.send(f, fast)
        # The streamed series is incomplete for another minute; its task must let the other
        # one use the worker meanwhile.
        self.task_of(f, "success", fast_uid, timeout=15)
        self.wait_delivered(dest, fast)
        slow_task, _ = self.task_of(f, os.path.join("tmp", "dispatcher"), slow_uid, timeout=1)
        # A parked stream is not restarted while nothing new arrived.
        begins = len(self.events(f, "dispatch.begin", slow_task))
        self.assertLessEqual(begins, 2, self.events(f, task_id=slow_task))
        self.send(f, slow[2:])
        p = run([FERRY_BIN, "series", "complete", slow_uid, "--config", f.config_path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.task_of(f, "success", slow_uid)
        self.wait_delivered(dest, slow)

    def assert_series_in_order(self, scp, series):
        """storescp stored every instance of series[0] before any of series[1], and so on."""
        order = self.store_order(scp)
        uids = [sop_uids(files) for files in series]
        self.assertEqual(set(order) & set().union(*uids), set().union(*uids))
        positions = [[i for i, u in enumerate(order) if u in s] for s in uids]
        for earlier, later in zip(positions, positions[1:]):
            self.assertLess(max(earlier), min(later), order)

    def listed_in_reverse(self):
        """Two new series UIDs (first, second) that this file system lists (readdir) second
        first when their folders are created in that order, as ext4 does for about half of all
        pairs (it lists by hash); on a file system that lists in creation order, any pair."""
        probe = tempfile.mkdtemp(dir=self.workdir, prefix="readdir-")
        for _ in range(30):
            first, second = generate_uid(), generate_uid()
            os.mkdir(os.path.join(probe, first))
            os.mkdir(os.path.join(probe, second))
            if [n for n in os.listdir(probe) if n in (first, second)] == [second, first]:
                break
        return first, second

    def test_ordered_target_receives_the_series_of_a_study_in_order(self):
        dest = self.storescp("ordered")
        f = self.serve({"pacs": dicom_target(dest.port, ordered=True)},
                       {"all": {"rule": "True", "target": "pacs"}})
        # A stream is not overtaken: half of the first series, the second, the rest of the
        # first, in one association. The second waits until the first is complete.
        study = generate_uid()
        first_uid, first = self.make_series(6, study_uid=study)
        second_uid, second = self.make_series(3, study_uid=study)
        self.send(f, first[:3] + second + first[3:])
        self.task_of(f, "success", first_uid)
        self.task_of(f, "success", second_uid)
        self.assert_series_in_order(dest, [first, second])

        # Series received while the router is busy are classified in one pass: still in the
        # order they were received, not in the order the file system lists them.
        router = wait_for(lambda: child_pids(f.proc.pid, "router"), 15,
                          what="the router process")[0]
        study = generate_uid()
        first_uid, second_uid = self.listed_in_reverse()
        _, first = self.make_series(4, study_uid=study, series_uid=first_uid)
        _, second = self.make_series(2, study_uid=study, series_uid=second_uid)
        os.kill(router, signal.SIGSTOP)
        try:
            self.send(f, first + second)
        finally:
            os.kill(router, signal.SIGCONT)
        self.task_of(f, "success", first_uid)
        self.task_of(f, "success", second_uid)
        self.assert_series_in_order(dest, [first, second])


if __name__ == "__main__":
    unittest.main()

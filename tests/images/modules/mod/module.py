"""A processing module for ferry's tests, written to mercure's module contract.

It reads $MERCURE_IN_DIR/task.json, and for every DICOM file in the input writes a changed copy
to $MERCURE_OUT_DIR: SeriesDescription gets the step's `settings.suffix` appended (or is set to
`settings.description`), and the series and every instance get new UIDs, as an AI module that
creates a derived series does. Other settings make it misbehave on purpose:
  copy: true        copy the input files unchanged (the benchmark's module)
  exit_code: N      exit with N before writing anything
  sleep: S          sleep S seconds first (timeouts, parallel jobs, a processor killed mid-job)
  write_nothing     exit 0 without output
  result: {...}     write this as result.json (notifications, dynamic routing)
It prints what it does, so that the test can read it in the module's log.
"""
import json
import os
import shutil
import sys
import time

import pydicom
from pydicom.uid import generate_uid

in_dir = os.environ["MERCURE_IN_DIR"]
out_dir = os.environ["MERCURE_OUT_DIR"]
with open(os.path.join(in_dir, "task.json")) as f:
    task = json.load(f)
process = task["process"]
settings = process.get("settings", {})
print(f"module {process['module_name']} uid={os.getuid()} settings={json.dumps(settings, sort_keys=True)}",
      flush=True)
# The whole task.json on one line, for the tests to check against mercure's model.
print("task.json: " + json.dumps(task, sort_keys=True), flush=True)

if settings.get("sleep"):
    time.sleep(float(settings["sleep"]))
if "exit_code" in settings:
    print("failing on purpose", file=sys.stderr, flush=True)
    sys.exit(int(settings["exit_code"]))
if settings.get("write_nothing"):
    sys.exit(0)

names = sorted(n for n in os.listdir(in_dir) if n.endswith(".dcm"))
if settings.get("copy"):
    for name in names:
        shutil.copyfile(os.path.join(in_dir, name), os.path.join(out_dir, name))
else:
    new_series = generate_uid()
    for name in names:
        ds = pydicom.dcmread(os.path.join(in_dir, name))
        if "description" in settings:
            ds.SeriesDescription = settings["description"]
        else:
            ds.SeriesDescription = str(ds.get("SeriesDescription", "")) + settings.get("suffix", "")
        ds.SeriesInstanceUID = new_series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = int(ds.get("SeriesNumber", 0) or 0) + 500
        ds.save_as(os.path.join(out_dir, f"{new_series}#{ds.SOPInstanceUID}.dcm"))
if "result" in settings:
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(settings["result"], f)
print(f"wrote {len(names)} file(s)", flush=True)

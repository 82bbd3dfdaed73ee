"""Here, after a device call: runs_*.tar.gz -> results/runs (never over a finished local run),
bench.json -> results/bench.json's machines (the device's record beside this machine's)."""

import json
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, "src")
from bnopt.estimates import machine_key, machine_records  # noqa: E402

src = Path(sys.argv[1])
runs = Path("results/runs")
for tb in sorted(src.glob("runs_*.tar.gz")):
    with tarfile.open(tb) as t:
        names = {m.name.split("/")[0] for m in t.getmembers()}
        for rid in sorted(names):
            if (runs / rid / "status.json").exists():
                print(f"skip {rid}: already here")
                continue
            members = [m for m in t.getmembers() if m.name.split("/")[0] == rid]
            t.extractall(runs, members=members, filter="data")
            print(f"unpacked {rid}")
b = src / "bench.json"
if b.exists():
    new = json.loads(b.read_text())
    path = Path("results/bench.json")
    old = machine_records(json.loads(path.read_text())) if path.exists() else {}
    for key, rec in machine_records(new).items():
        old[key] = rec
        print(f"bench record {key!r} into {path}")
    path.write_text(json.dumps({"machines": old}, indent=2))

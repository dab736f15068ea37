# maedfer workflow (Snakemake): a thin layer over the stage CLIs in pipeline/.
#
# Every setting lives in the params files (params.yaml: the paper; params/demo.yaml: the demo). The jobs
# come from maedfer.workflow.plan, the same plan that writes dvc.yaml and paper/dvc.yaml, so Snakemake
# and DVC run identical commands on identical files. One rule per job; shared jobs (a pre-training used by
# many fine-tunings, a fold run used by several tables) run once.
#
#   snakemake --cores 2 demo                     # the demo: data -> shards -> pre-training -> 5 folds -> table
#   snakemake --cores 8 reproduce_table5         # DFEW (Table 5 + per-class Table 12), paper settings
#   snakemake -n reproduce_all                   # dry run: the whole DAG of every table and figure
#   snakemake --profile workflow/profiles/slurm reproduce_table5      # on a SLURM cluster
#   snakemake --config params=my_params.yaml reproduce_table5         # another params file (same schema)
#
# Targets: demo, reproduce_table2 ... reproduce_table14, reproduce_fig3,
# reproduce_fig4, reproduce_fig5, reproduce_all; any job by its rule name (demo_fig4, paper_pretrain_mae_dfer).

import os
import sys

from snakemake.exceptions import WorkflowError

from maedfer.workflow.plan import build_plan, missing_root_message
from maedfer.workflow.profile import ParamsError

# The stage commands run with this environment's interpreter and console scripts.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

try:
    PAPER = build_plan(config.get("params", "params.yaml"))
    DEMO = build_plan(config.get("demo_params", "params/demo.yaml"))
except ParamsError as e:
    raise WorkflowError(str(e)) from None

# Files of the targets; reproduce_* come from the paper profile, demo* from the demo profile.
TARGETS = dict(PAPER.targets)
TARGETS["demo"] = DEMO.targets["reproduce_all"]


JOBS = {f"{plan.profile.name}_{job.name}": job for plan in (DEMO, PAPER) for job in plan.jobs.values()}


def missing_dataset_roots():
    """Raw dataset folders that the jobs about to run need and that are absent (one line each)."""
    lines = []
    for dag_job in workflow.dag.needrun_jobs():
        job = JOBS.get(dag_job.rule.name)
        if job is not None and job.raw_root is not None and not os.path.exists(job.raw_root):
            lines.append(missing_root_message(job.name.removeprefix("ingest_"), job.raw_root))
    return sorted(set(lines))


onstart:
    # After the DAG is built, before any job starts (never in a dry run): fail at once, naming the folder.
    if missing := missing_dataset_roots():
        sys.stderr.write("\n".join(f"maedfer: error: {line}" for line in missing) + "\n")
        raise WorkflowError(f"{len(missing)} dataset folder(s) missing; nothing was run")


rule demo:
    default_target: True
    input:
        TARGETS["demo"],


for _target, _files in PAPER.targets.items():

    rule:
        name:
            _target
        input:
            _files,


def _define(profile, job):
    # A raw dataset folder that is absent is left out of the inputs so that a dry run still lists the DAG;
    # the onstart check stops a real run before any job starts.
    inputs = [f for f in job.inputs if f != job.raw_root or os.path.exists(f)]

    rule:
        name:
            f"{profile}_{job.name}"  # the DVC stage name, prefixed with the profile (demo_..., paper_...)
        input:
            inputs,
        output:
            job.outputs,
        params:
            cmd=job.shell,
            settings=job.settings_json,
        conda:
            "envs/maedfer.yaml"  # used with --software-deployment-method conda; else the active environment
        threads: job.resources.get("cpus", 1)
        resources:
            gpu=job.resources.get("gpus", 0),
            cpus_per_task=job.resources.get("cpus", 1),
            mem_mb=job.resources.get("mem_mb", 4000),
            runtime=job.resources.get("runtime", 60),
        shell:
            "{params.cmd}"  # starts with `env OMP_NUM_THREADS=<cpus per process>` (maedfer.workflow.plan)


if PAPER.profile.name == DEMO.profile.name:
    raise WorkflowError(f"the params files {PAPER.params_file} and {DEMO.params_file} have the same profile name")
for _plan in (DEMO, PAPER):
    for _job in _plan.jobs.values():
        _define(_plan.profile.name, _job)

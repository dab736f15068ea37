# Shared by the rules: the two plans (paper and demo), the job lookups and the wildcard constraints.
#
# The jobs come from maedfer.workflow.plan, the same plan that writes dvc.yaml and paper/dvc.yaml, so
# Snakemake and DVC run identical commands on identical files. The rules (workflow/rules/*.smk) have
# output patterns with wildcards ({runs}, {dataset}, {fold}, ...); its input, command, settings, log,
# threads and resources come from the plan's job with those wildcard values (job_of(rule)). Only the
# torch-free maedfer.workflow modules are imported here (parsing stays fast; tests/test_workflow.py checks it).

import os
import re
import sys

from snakemake.exceptions import WorkflowError

from maedfer.workflow.plan import build_plan, missing_root_message
from maedfer.workflow.profile import ParamsError

# The stage commands run with this environment's interpreter and console scripts (its bin/ first on PATH).
envvars:
    "PATH",


os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

try:
    PAPER = build_plan(config.get("params", "params.yaml"))
    DEMO = build_plan(config.get("demo_params", "params/demo.yaml"))
except ParamsError as e:
    raise WorkflowError(str(e)) from None
if PAPER.profile.name == DEMO.profile.name:
    raise WorkflowError(f"the params files {PAPER.params_file} and {DEMO.params_file} have the same profile name")
LOGS = config.get("logs", "logs")  # each job's stdout and stderr: logs/<its output folder>.log

# Files of the targets; reproduce_* come from the paper profile, demo from the demo profile.
TARGETS = {**PAPER.targets, "demo": DEMO.targets["reproduce_all"]}

# (rule, wildcard values) -> (plan, job), and every output file -> (plan, job).
JOBS = {}
BY_OUTPUT = {}
for _plan in (DEMO, PAPER):
    for _job in _plan.jobs.values():
        JOBS[_job.rule, frozenset(_job.wildcards.items())] = (_plan, _job)
        for _out in _job.outputs:
            if _out in BY_OUTPUT:
                raise WorkflowError(f"{BY_OUTPUT[_out][0].params_file} and {_plan.params_file} both write {_out}")
            BY_OUTPUT[_out] = (_plan, _job)


# Every wildcard of the rules' output patterns, also those no job of these plans uses (a profile without
# downloads or acquired datasets): a rule without jobs then matches no file, rather than every file.
RULE_WILDCARDS = {"acquire", "dataset", "demo", "download", "experiment", "fold", "pretraining", "results", "runs",
                  "shards", "table"}
WILDCARDS = sorted({key for _, job in JOBS.values() for key in job.wildcards} | RULE_WILDCARDS)


def constraints(rule):
    """Wildcard name -> regex of the values the plans use in ``rule`` (nothing else matches)."""
    values = {key: set() for key in WILDCARDS}
    for (name, _), (_, job) in JOBS.items():
        if name == rule:
            for key, value in job.wildcards.items():
                values[key].add(value)
    return {key: "|".join(re.escape(v) for v in sorted(vs, key=len, reverse=True)) or "(?!)"
            for key, vs in values.items()}


class PlannedRule:
    """The directives of one rule as functions of its wildcards, read from the plan's job."""

    def __init__(self, rule):
        self.rule = rule
        self.wildcard_constraints = constraints(rule)

    def plan_job(self, wildcards):
        key = (self.rule, frozenset(wildcards.items()))
        if key not in JOBS:
            raise WorkflowError(f"no job of {self.rule!r} in {PAPER.params_file} or {DEMO.params_file} "
                                f"with {dict(wildcards.items())}")
        return JOBS[key]

    def job(self, wildcards):
        return self.plan_job(wildcards)[1]

    def inputs(self, wildcards):
        # A raw dataset folder or a released checkpoint file that the user provides and that is absent is left
        # out so that a dry run still lists the DAG; the onstart check stops a real run before any job starts.
        job = self.job(wildcards)
        return [f for f in job.inputs if (f != job.raw_root and f not in job.provided) or os.path.exists(f)]

    def cmd(self, wildcards):
        return self.job(wildcards).shell  # starts with `env OMP_NUM_THREADS=<cpus per process>`

    def settings(self, wildcards):
        return self.job(wildcards).settings_json  # a changed setting re-runs the job

    def made_by(self, wildcards):
        """What made a table (its report caption): the params file and each row's fine-tuning settings."""
        plan, job = self.plan_job(wildcards)
        rows = {}
        for other in plan.jobs.values():
            if other.stage == "finetune" and other.outputs[0] in job.inputs:
                s = other.settings
                rows.setdefault(other.item["experiment"], {
                    "init": s.get("init"), **{k: s.get(k) for k in REPORT_SETTINGS if k in s}})
        return {"params_file": plan.params_file, "profile": plan.profile.name, "experiments": rows}

    def threads(self, wildcards):
        return self.job(wildcards).resources.get("cpus", 1)

    def gpus(self, wildcards):
        return self.job(wildcards).resources.get("gpus", 0)

    def mem_mb(self, wildcards):
        return self.job(wildcards).resources.get("mem_mb", 4000)

    def runtime(self, wildcards):
        return self.job(wildcards).resources.get("runtime", 60)


PLANNED = {}
# The fine-tuning settings a table's report caption names (all of them: each fold's own caption).
REPORT_SETTINGS = ("arch", "epochs", "batch_size", "base_lr", "layer_decay", "mixup", "cutmix", "seed")


def job_of(name):
    """The plan lookups of the rule ``name`` (one object per rule)."""
    return PLANNED.setdefault(name, PlannedRule(name))


def log_file(pattern):
    """The log of the job writing ``pattern`` (a rule's output folder): ``logs/runs/demo/pretrain/mae_dfer.log``."""
    return f"{LOGS}/{pattern}.log"


def target(name):
    """The files of a target rule; a target that the params file does not define is a one-line error."""

    def files(wildcards):
        if name not in TARGETS:
            raise WorkflowError(f"{PAPER.params_file} defines no {name} (its tables / figures have none)")
        return TARGETS[name]

    return files


def missing_dataset_roots():
    """Raw dataset folders and released checkpoint files that the jobs about to run need and that are absent."""
    lines = []
    for dag_job in workflow.dag.needrun_jobs():
        found = BY_OUTPUT.get(str(dag_job.output[0])) if dag_job.output else None
        job = found[1] if found else None
        if job is not None and job.raw_root is not None and not os.path.exists(job.raw_root):
            lines.append(missing_root_message(job.name.removeprefix("ingest_"), job.raw_root))
        if job is not None:
            lines += [message for path, message in job.provided.items() if not os.path.exists(path)]
        if job is not None and job.stage == "acquire":  # a gated dataset with neither files nor credentials
            from maedfer.data.acquire.sources import unmet_source

            if line := unmet_source(job.settings, job.item["root"], job.item["dataset"]):
                lines.append(line)
    return sorted(set(lines))


def stop_on_missing_datasets():
    """After the DAG is built, before any job starts (never in a dry run): fail at once, naming the folders."""
    if missing := missing_dataset_roots():
        sys.stderr.write("\n".join(f"maedfer: error: {line}" for line in missing) + "\n")
        raise WorkflowError(f"{len(missing)} dataset folder(s) or checkpoint file(s) missing; nothing was run")

"""Jobs and plans: a stage command with its files, and the jobs of one params file.

A :class:`Job` is one Snakemake job and one DVC stage. Jobs of the same shape come from one
:class:`Template` filled with an ``item``: DVC writes them as one ``foreach`` stage, Snakemake runs
them through one rule with wildcards (``Job.rule``, ``Job.wildcards``). Built by
:mod:`maedfer.workflow.plan`.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maedfer.workflow.profile import Profile, settings_json

PYTHON = "python"  # the stage modules run with the environment's python (README: activate .venv first)


def stage_cmd(stage: str, gpus: int) -> list[str]:
    """``python -m pipeline.<stage>``, or under ``torchrun`` with one process per GPU when ``gpus > 1``."""
    if gpus > 1:  # one process per GPU, DDP inside; a lost rank restarts the group from its checkpoint
        return ["torchrun", "--standalone", f"--nproc_per_node={gpus}", "--max-restarts=2", "-m", f"pipeline.{stage}"]
    return [PYTHON, "-m", f"pipeline.{stage}"]


@dataclass(frozen=True)
class Template:
    """The command, files and params keys shared by a group of jobs, with ``{name}`` placeholders.

    ``group`` names the DVC ``foreach`` stage; ``key`` (a pattern too) names each job in it
    (``finetune@mae_dfer-dfew-fold1``).
    """

    group: str
    key: str
    cmd: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params_keys: tuple[str, ...] = ()

    def fill(self, item: dict[str, Any]) -> dict[str, Any]:
        """Command, inputs, outputs and params keys of the job ``item`` describes."""
        return {"cmd": [s.format(**item) for s in self.cmd], "inputs": [s.format(**item) for s in self.inputs],
                "outputs": [s.format(**item) for s in self.outputs],
                "params_keys": [s.format(**item) for s in self.params_keys]}


@dataclass
class Job:
    """One stage command with its files: a Snakemake job and a DVC stage."""

    name: str  # unique in the plan; the DVC stage name of a job without a template
    stage: str  # demo_data | ingest | pretrain | finetune | aggregate | fig4 | fig5 | confusion | curves
    rule: str  # the Snakemake rule (workflow/rules/*.smk) whose output patterns make this job's outputs
    wildcards: dict[str, str]  # the values of that rule's wildcards for this job
    cmd: list[str]
    inputs: list[str]
    outputs: list[str]
    params_keys: list[str] = field(default_factory=list)  # params-file keys the job reads (DVC `params:`)
    settings: dict[str, Any] = field(default_factory=dict)  # resolved settings (Snakemake `params:`)
    resources: dict[str, Any] = field(default_factory=lambda: {"gpus": 0})
    raw_root: str | None = None  # ingest: the dataset folder the user provides (checked before a run)
    provided: dict[str, str] = field(default_factory=dict)  # input files the user provides -> how to get one
    metrics: list[str] = field(default_factory=list)  # DVC metrics among the outputs
    plots: list[str] = field(default_factory=list)  # DVC confusion plots among the outputs
    curves: dict[str, list[str]] = field(default_factory=dict)  # plot title -> per-fold curve CSVs (DVC plots)
    template: Template | None = None  # the group this job belongs to (DVC foreach), filled with `item`
    item: dict[str, Any] = field(default_factory=dict)

    @property
    def shell(self) -> str:
        """The command as one shell line."""
        return shlex.join(self.cmd)

    @property
    def settings_json(self) -> str:
        """The resolved settings as canonical JSON (a change re-runs the Snakemake job)."""
        return settings_json(self.settings)

    @property
    def key(self) -> str:
        """The job's name in its DVC foreach group (the template's key filled in)."""
        return self.template.key.format(**self.item) if self.template else self.name


def _code_file(cmd: list[str]) -> str | None:
    """``pipeline/<stage>.py`` of a ``... -m pipeline.<stage> ...`` command."""
    if "-m" in cmd and (module := cmd[cmd.index("-m") + 1]).startswith("pipeline."):
        return module.replace(".", "/") + ".py"
    return None


@dataclass
class Plan:
    """Every job of a profile, by name, and the files of each target (``reproduce_table5``, ...)."""

    profile: Profile
    params_file: str  # as written in commands (relative to the repository root)
    jobs: dict[str, Job] = field(default_factory=dict)
    targets: dict[str, list[str]] = field(default_factory=dict)  # target name -> files

    def add(self, job: Job) -> Job:
        """Add ``job`` (its command gets the thread count and its stage's code file as an input) once."""
        if job.name not in self.jobs:
            # torch's intra-op threads per process, fixed by the params file rather than by whoever runs the job:
            # float reductions depend on the thread count, so this is what makes a Snakemake run and a DVC run
            # (or a laptop and a cluster node) produce the same weights and the same table.
            procs = max(1, int(job.resources.get("gpus", 0)))
            threads = max(1, int(job.resources.get("cpus", 1)) // procs)
            env = ("env", f"OMP_NUM_THREADS={threads}")
            job.cmd = [*env, *job.cmd]
            # A download's code is not an input: a re-run would delete and fetch gigabytes again; the file is
            # checked by its sha256 instead.
            # Nor is acquire's: it verifies what is there and does nothing when the source is satisfied.
            code = _code_file(job.cmd) if job.stage not in ("download", "acquire") else None
            if code is not None:  # the stage's code: editing it re-runs the stage (Snakemake and DVC)
                job.inputs.append(code)
            if job.template is not None:
                t = job.template
                job.template = dataclasses.replace(t, cmd=(*env, *t.cmd), inputs=t.inputs + ((code,) if code else ()))
                if job.template.fill(job.item) != {"cmd": job.cmd, "inputs": job.inputs, "outputs": job.outputs,
                                                   "params_keys": job.params_keys}:
                    raise AssertionError(f"job {job.name}: its template does not give its command and files")
            self.jobs[job.name] = job
        return self.jobs[job.name]

    def producer(self, path: str) -> Job | None:
        """The job that writes ``path`` (None: an input from outside the DAG)."""
        for job in self.jobs.values():
            if path in job.outputs:
                return job
        return None

    def closure(self, files: list[str]) -> list[Job]:
        """The jobs needed to make ``files`` (dependencies first)."""
        seen: dict[str, Job] = {}

        def visit(path: str) -> None:
            job = self.producer(path)
            if job is None or job.name in seen:
                return
            for dep in job.inputs:
                visit(dep)
            seen[job.name] = job

        for f in files:
            visit(f)
        return list(seen.values())

    def missing_provided(self, files: list[str]) -> list[str]:
        """One line per input file that the user provides (a released checkpoint) and that is absent."""
        return sorted({message for job in self.closure(files) for path, message in job.provided.items()
                       if not Path(path).exists()})

    def provided_inputs(self) -> set[str]:
        """Every input from outside the DAG that the user provides: raw dataset folders and checkpoint files."""
        return ({j.raw_root for j in self.jobs.values() if j.raw_root}
                | {path for j in self.jobs.values() for path in j.provided})

    def missing_roots(self, files: list[str]) -> list[tuple[str, str]]:
        """(dataset, root) of every raw dataset folder that the jobs making ``files`` need and that is absent."""
        out = []
        for job in self.closure(files):
            if job.raw_root is not None and not Path(job.raw_root).exists() and not Path(job.outputs[0]).exists():
                out.append((job.name.removeprefix("ingest_"), job.raw_root))
        return out

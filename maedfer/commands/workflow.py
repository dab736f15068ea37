"""``maedfer workflow``: check a params file, list its DAG, and (re)generate the DVC pipelines.

Tools for the Snakemake/DVC pipeline built from params.yaml and params/demo.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys

from maedfer.commands import add_command


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``maedfer workflow`` (check, jobs, dvc)."""
    p = add_command(subparsers, "workflow", __doc__)
    sub = p.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate params files: schema, cross references, every run's recipe values "
                                         "and model (built on the meta device)")
    check.add_argument("params", nargs="*", default=["params.yaml", "params/demo.yaml"])
    jobs = sub.add_parser("jobs", help="the jobs (commands, inputs, outputs) a target needs, as JSON")
    jobs.add_argument("--params", default="params.yaml")
    jobs.add_argument("--target", default="reproduce_all", help="reproduce_table5, reproduce_all, ...")
    dvc = sub.add_parser("dvc", help="write dvc.yaml (demo) and paper/dvc.yaml (paper) from the params files")
    dvc.add_argument("--check", action="store_true", help="only report stale files (exit code 1 if any)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``maedfer workflow check|jobs|dvc``."""
    from maedfer.workflow.dvc import write_dvc_files
    from maedfer.workflow.plan import build_plan
    from maedfer.workflow.profile import ParamsError, load_profile

    try:
        if args.action == "check":
            from maedfer.settings.validate import model_problems

            for path in args.params:
                profile = load_profile(path)
                if problems := model_problems(profile.params):  # every run's model, built on the meta device
                    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                    raise ParamsError(f"{path}: {problems[0]}{more}")
                sys.stdout.write(f"{path}: ok (profile {profile.name}, {len(build_plan(path).jobs)} jobs)\n")
            return 0
        if args.action == "jobs":
            plan = build_plan(args.params)
            if args.target not in plan.targets:
                raise ParamsError(f"{args.params}: no target {args.target!r}; targets: {', '.join(plan.targets)}")
            jobs = plan.closure(plan.targets[args.target])
            from maedfer.workflow.plan import missing_root_message

            for dataset, root in plan.missing_roots(plan.targets[args.target]):  # what a real run would stop on
                sys.stderr.write(f"note: {missing_root_message(dataset, root)}\n")
            sys.stdout.write(json.dumps([{"name": j.name, "cmd": j.shell, "inputs": j.inputs, "outputs": j.outputs}
                                         for j in jobs], indent=1) + "\n")
            return 0
        changed = write_dvc_files(check=args.check)
        if args.check:
            if changed:
                sys.stderr.write(f"stale: {', '.join(changed)}; run `maedfer workflow dvc`\n")
                return 1
            sys.stdout.write("dvc.yaml files are up to date\n")
        else:
            sys.stdout.write((f"wrote {', '.join(changed)}" if changed else "dvc.yaml files already up to date") + "\n")
        return 0
    except (ParamsError, FileNotFoundError) as exc:
        sys.stderr.write(f"maedfer workflow: error: {exc}\n")
        return 2

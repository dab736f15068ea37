# maedfer workflow (Snakemake): a thin layer over the stage commands (`python -m pipeline.<stage>`).
#
# Every setting lives in the params files (params.yaml: the paper; params/demo.yaml: the demo). The jobs
# come from maedfer.workflow.plan, the same plan that writes dvc.yaml and paper/dvc.yaml, so Snakemake
# and DVC run identical commands on identical files. One rule per stage (workflow/rules/*.smk), with
# wildcards for the dataset, pretraining, experiment, fold and table; shared jobs (a pre-training used by
# many fine-tunings, a fold run used by several tables) run once. Each job logs to logs/<profile>/<job>.log.
#
#   snakemake --cores 2 demo                     # the demo: data -> shards -> pre-training -> 5 folds -> table
#   snakemake --cores 8 reproduce_table5         # DFEW (Table 5 + per-class Table 12), paper settings
#   snakemake -n reproduce_all                   # dry run: the whole DAG of every table and figure
#   snakemake --profile workflow/profiles/slurm reproduce_table5      # on a SLURM cluster
#   snakemake --config params=my_params.yaml reproduce_table5         # another params file (same schema)
#   snakemake --report report.html demo          # after a run: one HTML page (tables, figures, captions)
#
# Targets: demo, reproduce_table2 ... reproduce_table14, reproduce_fig3, reproduce_fig4, reproduce_fig5,
# reproduce_all; or any output file (runs/paper/finetune/mae_dfer/dfew/fold1/metrics.json).
# The authors' released fine-tuned checkpoints, evaluated fold by fold beside their numbers (no training):
# evaluate_released_dfew, evaluate_released_ferv39k, evaluate_released_mafw, reproduce_released.


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/released.smk"


onstart:
    # Every run's model, built on the meta device (torch is imported here, never at parse time): a bad
    # region size or constructor argument stops the workflow before its first job, not after upstream ones.
    from maedfer.settings.validate import model_problems

    if problems := [f"{plan.params_file}: {line}" for plan in (PAPER, DEMO) for line in model_problems(plan.profile.params)]:
        sys.stderr.write("\n".join(f"maedfer: error: {line}" for line in problems) + "\n")
        raise WorkflowError(f"{len(problems)} model setting(s) cannot be built; nothing was run")
    stop_on_missing_datasets()  # a dataset folder or checkpoint a job needs is absent: stop before any job starts

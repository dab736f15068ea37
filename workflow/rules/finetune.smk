# Fine-tuning (pipeline/finetune.py): one job per experiment, dataset and fold, from its pretraining's
# model (or from scratch); a fold run used by several tables is one job.


rule finetune:
    input:
        job_of("finetune").inputs,
    output:
        "{runs}/finetune/{experiment}/{dataset}/fold{fold}/metrics.json",
        "{runs}/finetune/{experiment}/{dataset}/fold{fold}/predictions.csv",
        "{runs}/finetune/{experiment}/{dataset}/fold{fold}/model.pt",
        report("{runs}/finetune/{experiment}/{dataset}/fold{fold}/history.json", caption="../report/finetune.rst",
               category="fine-tuning", subcategory="{experiment} on {dataset}",
               labels={"experiment": "{experiment}", "dataset": "{dataset}", "fold": "{fold}", "file": "history"}),
    log:
        log_file("{runs}/finetune/{experiment}/{dataset}/fold{fold}"),
    params:
        cmd=job_of("finetune").cmd,
        settings=job_of("finetune").settings,
    wildcard_constraints:
        **job_of("finetune").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("finetune").threads
    resources:
        gpu=job_of("finetune").gpus,
        cpus_per_task=job_of("finetune").threads,
        mem_mb=job_of("finetune").mem_mb,
        runtime=job_of("finetune").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"

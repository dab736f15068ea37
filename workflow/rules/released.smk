# The authors' released checkpoints (maedfer.workflow.released): downloads (pipeline/download.py), and the
# evaluate-only jobs of released.finetuned: one 2-clip test per fold (pipeline/evaluate.py) and a table of
# them beside the authors' numbers (pipeline/aggregate.py --released). A released checkpoint given as a
# path is the user's file: a run that needs it and does not find it stops at once (common.smk).


rule download:
    output:
        "{download}",
    log:
        log_file("{download}"),
    params:
        cmd=job_of("download").cmd,
        settings=job_of("download").settings,
    wildcard_constraints:
        **job_of("download").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("download").threads
    resources:
        gpu=job_of("download").gpus,
        cpus_per_task=job_of("download").threads,
        mem_mb=job_of("download").mem_mb,
        runtime=job_of("download").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


rule evaluate_released:
    input:
        job_of("evaluate_released").inputs,
    output:
        "{runs}/evaluate_released/{dataset}/fold{fold}/metrics.json",
        "{runs}/evaluate_released/{dataset}/fold{fold}/predictions.csv",
    log:
        log_file("{runs}/evaluate_released/{dataset}/fold{fold}"),
    params:
        cmd=job_of("evaluate_released").cmd,
        settings=job_of("evaluate_released").settings,
    wildcard_constraints:
        **job_of("evaluate_released").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("evaluate_released").threads
    resources:
        gpu=job_of("evaluate_released").gpus,
        cpus_per_task=job_of("evaluate_released").threads,
        mem_mb=job_of("evaluate_released").mem_mb,
        runtime=job_of("evaluate_released").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


rule aggregate_released:
    input:
        job_of("aggregate_released").inputs,
    output:
        "{results}/released/{dataset}/released_{dataset}.md",
        "{results}/released/{dataset}/released_{dataset}.csv",
        "{results}/released/{dataset}/metrics.json",
    log:
        log_file("{results}/released/{dataset}"),
    params:
        cmd=job_of("aggregate_released").cmd,
        settings=job_of("aggregate_released").settings,
    wildcard_constraints:
        **job_of("aggregate_released").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("aggregate_released").threads
    resources:
        gpu=job_of("aggregate_released").gpus,
        cpus_per_task=job_of("aggregate_released").threads,
        mem_mb=job_of("aggregate_released").mem_mb,
        runtime=job_of("aggregate_released").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"

# Pre-training (pipeline/pretrain.py): one job per entry of pretrain.runs; shared by every fine-tuning
# and figure that uses it. With pretrain.resources.gpus > 1 the command runs under torchrun (DDP).


rule pretrain:
    input:
        job_of("pretrain").inputs,
    output:
        "{runs}/pretrain/{pretraining}/model.pt",
        report("{runs}/pretrain/{pretraining}/history.json", caption="../report/pretrain.rst",
               category="pre-training", subcategory="{pretraining}",
               labels={"pretraining": "{pretraining}", "file": "history"}),
    log:
        log_file("{runs}/pretrain/{pretraining}"),
    params:
        cmd=job_of("pretrain").cmd,
        settings=job_of("pretrain").settings,
    wildcard_constraints:
        **job_of("pretrain").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("pretrain").threads
    resources:
        gpu=job_of("pretrain").gpus,
        cpus_per_task=job_of("pretrain").threads,
        mem_mb=job_of("pretrain").mem_mb,
        runtime=job_of("pretrain").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"

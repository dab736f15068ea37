# Data: the generated demo data set, each dataset acquired from its source (pipeline/acquire.py), then one
# shard set per dataset (pipeline/ingest.py).


rule demo_data:
    output:
        report("{demo}/manifest.json", caption="../report/demo_data.rst", category="data",
               subcategory="demo data", labels={"dataset": "demo data", "file": "manifest"}),
    log:
        log_file("{demo}/manifest"),
    params:
        cmd=job_of("demo_data").cmd,
        settings=job_of("demo_data").settings,
    wildcard_constraints:
        **job_of("demo_data").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("demo_data").threads
    resources:
        gpu=job_of("demo_data").gpus,
        cpus_per_task=job_of("demo_data").threads,
        mem_mb=job_of("demo_data").mem_mb,
        runtime=job_of("demo_data").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


# A dataset's `source` (params file datasets.<name>.source: a folder, files or URLs with checksums, or a
# catalogue entry) -> its root, verified; <root>/.acquired.json is rewritten only when the source changed.
rule acquire:
    output:
        "{acquire}/.acquired.json",
    log:
        log_file("{acquire}/acquire"),
    params:
        cmd=job_of("acquire").cmd,
        settings=job_of("acquire").settings,
    wildcard_constraints:
        **job_of("acquire").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("acquire").threads
    resources:
        gpu=job_of("acquire").gpus,
        cpus_per_task=job_of("acquire").threads,
        mem_mb=job_of("acquire").mem_mb,
        runtime=job_of("acquire").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


# Raw dataset folder (or the demo data, or an acquired root's marker) -> shards + index.parquet.
rule ingest:
    input:
        job_of("ingest").inputs,
    output:
        "{shards}/{dataset}/index.parquet",
        report("{shards}/{dataset}/report.json", caption="../report/ingest.rst", category="data",
               subcategory="{dataset}", labels={"dataset": "{dataset}", "file": "ingest report"}),
    log:
        log_file("{shards}/{dataset}"),
    params:
        cmd=job_of("ingest").cmd,
        settings=job_of("ingest").settings,
    wildcard_constraints:
        **job_of("ingest").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("ingest").threads
    resources:
        gpu=job_of("ingest").gpus,
        cpus_per_task=job_of("ingest").threads,
        mem_mb=job_of("ingest").mem_mb,
        runtime=job_of("ingest").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"

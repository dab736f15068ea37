# maedfer workflow (Snakemake). Thin layer over the stage CLIs; settings come from params.yaml.
configfile: "params.yaml"


rule all:
    input:
        "results/model_stats.json",


rule model_stats:
    output:
        "results/model_stats.json",
    log:
        "logs/model_stats.log",
    shell:
        "maedfer model-stats --json > {output}.tmp 2> {log} && mv {output}.tmp {output}"

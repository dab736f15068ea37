# Results: one aggregation per table (pipeline/aggregate.py: markdown/CSV/LaTeX/HTML, metrics.json, one confusion
# CSV per row and dataset, one curve CSV per fold) and the figures (pipeline/figures.py). The outputs marked
# report(...) make `snakemake --report report.html <target>` (captions: workflow/report/*.rst).


rule aggregate:
    input:
        job_of("aggregate").inputs,
    output:
        "{results}/{table}/{table}.md",
        "{results}/{table}/{table}.csv",
        "{results}/{table}/{table}.tex",
        report("{results}/{table}/{table}.html", caption="../report/table.rst", category="results",
               subcategory="{table}", labels={"table": "{table}", "file": "table"}),
        report("{results}/{table}/metrics.json", caption="../report/table_metrics.rst", category="results",
               subcategory="{table}", labels={"table": "{table}", "file": "metrics.json"}),
        directory("{results}/{table}/confusion"),
        directory("{results}/{table}/curves"),
    log:
        log_file("{results}/{table}"),
    params:
        cmd=job_of("aggregate").cmd,
        settings=job_of("aggregate").settings,
        made_by=job_of("aggregate").made_by,
    wildcard_constraints:
        **job_of("aggregate").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("aggregate").threads
    resources:
        gpu=job_of("aggregate").gpus,
        cpus_per_task=job_of("aggregate").threads,
        mem_mb=job_of("aggregate").mem_mb,
        runtime=job_of("aggregate").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


# Tables 5-7 also write their per-class companions (Tables 12-14).
rule aggregate_per_class:
    input:
        job_of("aggregate_per_class").inputs,
    output:
        "{results}/{table}/{table}.md",
        "{results}/{table}/{table}.csv",
        "{results}/{table}/{table}.tex",
        "{results}/{table}/{table}_per_class.md",
        "{results}/{table}/{table}_per_class.csv",
        "{results}/{table}/{table}_per_class.tex",
        report("{results}/{table}/{table}.html", caption="../report/table.rst", category="results",
               subcategory="{table}", labels={"table": "{table}", "file": "table"}),
        report("{results}/{table}/metrics.json", caption="../report/table_metrics.rst", category="results",
               subcategory="{table}", labels={"table": "{table}", "file": "metrics.json"}),
        directory("{results}/{table}/confusion"),
        directory("{results}/{table}/curves"),
    log:
        log_file("{results}/{table}"),
    params:
        cmd=job_of("aggregate_per_class").cmd,
        settings=job_of("aggregate_per_class").settings,
        made_by=job_of("aggregate_per_class").made_by,
    wildcard_constraints:
        **job_of("aggregate_per_class").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("aggregate_per_class").threads
    resources:
        gpu=job_of("aggregate_per_class").gpus,
        cpus_per_task=job_of("aggregate_per_class").threads,
        mem_mb=job_of("aggregate_per_class").mem_mb,
        runtime=job_of("aggregate_per_class").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


# Fig. 4: reconstructions at each mask ratio (fig4-mask<ratio>.png) and fig4.json.
rule fig4:
    input:
        job_of("fig4").inputs,
    output:
        report(directory("{results}/figures/fig4"), patterns=["{name}.png"], caption="../report/fig4.rst",
               category="pre-training", subcategory="Fig. 4", labels={"figure": "Fig. 4", "file": "{name}"}),
    log:
        log_file("{results}/figures/fig4"),
    params:
        cmd=job_of("fig4").cmd,
        settings=job_of("fig4").settings,
    wildcard_constraints:
        **job_of("fig4").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("fig4").threads
    resources:
        gpu=job_of("fig4").gpus,
        cpus_per_task=job_of("fig4").threads,
        mem_mb=job_of("fig4").mem_mb,
        runtime=job_of("fig4").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


# Fig. 5: t-SNE of one fold's test set.
rule fig5:
    input:
        job_of("fig5").inputs,
    output:
        report("{results}/figures/fig5.png", caption="../report/fig5.rst", category="fine-tuning",
               subcategory="Fig. 5", labels={"figure": "Fig. 5 (t-SNE)", "file": "fig5.png"}),
        "{results}/figures/fig5.npz",
    log:
        log_file("{results}/figures/fig5"),
    params:
        cmd=job_of("fig5").cmd,
        settings=job_of("fig5").settings,
    wildcard_constraints:
        **job_of("fig5").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("fig5").threads
    resources:
        gpu=job_of("fig5").gpus,
        cpus_per_task=job_of("fig5").threads,
        mem_mb=job_of("fig5").mem_mb,
        runtime=job_of("fig5").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


# The confusion matrix pooled over the folds of Fig. 5's experiment and dataset.
rule confusion:
    input:
        job_of("confusion").inputs,
    output:
        report("{results}/figures/confusion-{experiment}-{dataset}.png", caption="../report/confusion.rst",
               category="results", subcategory="confusion matrices",
               labels={"experiment": "{experiment}", "dataset": "{dataset}", "file": "confusion matrix"}),
        "{results}/figures/confusion-{experiment}-{dataset}.json",
    log:
        log_file("{results}/figures/confusion-{experiment}-{dataset}"),
    params:
        cmd=job_of("confusion").cmd,
        settings=job_of("confusion").settings,
    wildcard_constraints:
        **job_of("confusion").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("confusion").threads
    resources:
        gpu=job_of("confusion").gpus,
        cpus_per_task=job_of("confusion").threads,
        mem_mb=job_of("confusion").mem_mb,
        runtime=job_of("confusion").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"


# Training curves of those folds.
rule curves:
    input:
        job_of("curves").inputs,
    output:
        report("{results}/figures/curves-{experiment}-{dataset}.png", caption="../report/curves.rst",
               category="fine-tuning", subcategory="training curves",
               labels={"experiment": "{experiment}", "dataset": "{dataset}", "file": "training curves"}),
    log:
        log_file("{results}/figures/curves-{experiment}-{dataset}"),
    params:
        cmd=job_of("curves").cmd,
        settings=job_of("curves").settings,
    wildcard_constraints:
        **job_of("curves").wildcard_constraints,
    conda:
        "../../envs/maedfer.yaml"
    threads: job_of("curves").threads
    resources:
        gpu=job_of("curves").gpus,
        cpus_per_task=job_of("curves").threads,
        mem_mb=job_of("curves").mem_mb,
        runtime=job_of("curves").runtime,
    shell:
        "{params.cmd} > {log} 2>&1"

# Targets: `snakemake demo` (the default) and the paper's tables and figures (reproduce_*), each the
# files of maedfer.workflow.plan's target of that name (params.yaml decides which jobs they need).


rule demo:
    default_target: True
    input:
        TARGETS["demo"],


rule reproduce_all:
    input:
        target("reproduce_all"),


rule reproduce_table2:
    input:
        target("reproduce_table2"),


rule reproduce_table3:
    input:
        target("reproduce_table3"),


rule reproduce_table4:
    input:
        target("reproduce_table4"),


rule reproduce_table5:
    input:
        target("reproduce_table5"),


rule reproduce_table6:
    input:
        target("reproduce_table6"),


rule reproduce_table7:
    input:
        target("reproduce_table7"),


rule reproduce_table8:
    input:
        target("reproduce_table8"),


rule reproduce_table9:
    input:
        target("reproduce_table9"),


rule reproduce_table10:
    input:
        target("reproduce_table10"),


rule reproduce_table11:
    input:
        target("reproduce_table11"),


rule reproduce_table12:
    input:
        target("reproduce_table12"),


rule reproduce_table13:
    input:
        target("reproduce_table13"),


rule reproduce_table14:
    input:
        target("reproduce_table14"),


rule reproduce_fig3:
    input:
        target("reproduce_fig3"),


rule reproduce_fig4:
    input:
        target("reproduce_fig4"),


rule reproduce_fig5:
    input:
        target("reproduce_fig5"),


# The authors' released fine-tuned checkpoints evaluated on each fold of our data copy (released.finetuned).
rule evaluate_released_dfew:
    input:
        target("evaluate_released_dfew"),


rule evaluate_released_ferv39k:
    input:
        target("evaluate_released_ferv39k"),


rule evaluate_released_mafw:
    input:
        target("evaluate_released_mafw"),


rule reproduce_released:
    input:
        target("reproduce_released"),

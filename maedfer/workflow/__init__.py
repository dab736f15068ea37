"""The pipeline DAG over the params files: schema, resolved settings, jobs, DVC rendering.

Used by the Snakefile and by ``maedfer workflow dvc`` (which writes dvc.yaml and paper/dvc.yaml).
"""

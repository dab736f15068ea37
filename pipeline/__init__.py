"""Stage commands of the maedfer DAG: ``python -m pipeline.<stage>`` from the repository root."""

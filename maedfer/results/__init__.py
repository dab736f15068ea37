"""Results: the paper's published numbers and the aggregation of our fold runs into its tables.

* ``paper_tables.yaml`` + :mod:`~maedfer.results.paper`: the paper's Tables 2-14 and Fig. 3 as data.
* :mod:`~maedfer.results.collect`: read fold run folders, fold mean/std and pooled UAR/WAR per row.
* :mod:`~maedfer.results.tables` / :mod:`~maedfer.results.render`: paper rows and ours side by side,
  as Markdown, CSV and LaTeX.
* :mod:`~maedfer.results.dvc_files`: ``metrics.json`` and confusion CSVs for DVC.
* :mod:`~maedfer.results.aggregate`: the stage (``python -m pipeline.aggregate`` is its CLI); it logs the table to
  MLflow with :func:`maedfer.tracking.log_table_runs` (a parent run per table, a child run per fold).
"""

from maedfer.results.paper import PaperRow, PaperTable, PaperTables, load_paper_tables

__all__ = ["PaperRow", "PaperTable", "PaperTables", "load_paper_tables"]

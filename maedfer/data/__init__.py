"""Data: dataset adapters, acquisition, ingest into Parquet shards, datasets, sampling and transforms."""

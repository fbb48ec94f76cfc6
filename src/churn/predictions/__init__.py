"""The prediction log: every churn score the system hands out, kept in the data lake.

- :mod:`~churn.predictions.records`: the record format and the log's layout (names, columns);
- :mod:`~churn.predictions.logger`: the transformer's writer (gzipped JSON lines, standard
  library only: the serving image has neither pyarrow nor boto3);
- :mod:`~churn.predictions.log`: the batch writer (parquet), the reader and the compaction.

This package imports none of its modules: the serving image imports the logger alone.
"""

"""The Dask engine: the same stages as the pandas path, partition by partition on a Dask cluster.

Each Dask partition is a plain pandas DataFrame, so every stage here runs the pandas
path's own per-partition code (the fitted ``FeaturePipeline``, the declared validation
rules, the drift statistics' bin counts) inside ``map_partitions`` or one task per
partition, and only reduces small results (counts, a few example rows) on the driver.
Nothing here is imported by the pandas path, and Dask loads only when a function is called.
"""

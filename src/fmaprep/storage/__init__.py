"""Storage: where inputs and outputs live, and how the driver talks to them.

``uris`` (the one URI parser and its error family, resolution, local paths, hidden siblings),
``listing`` (the inputs and their metadata), ``retrying`` (the one retry policy, resumed reads),
``stores`` (local disk, S3 and HDFS clients without a JVM: listing, streaming reads and writes,
atomic publish), ``checksum``, ``s3_settings`` (endpoint, region,
credentials chain: one source for the job and the health check), ``probe`` (the health check
behind ``scripts/check-storage.sh``). May import ``model``, ``tracks`` and ``config``; never
``spark``, ``job`` or anything above.
"""

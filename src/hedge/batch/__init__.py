"""The batch lane: OpenAI-style files and batches, run as scheduled lines through the gateway pipeline.

A face's layer of its own, between the HTTP face and the gateway: :mod:`~hedge.batch.store` keeps
files, batches and lines in the state database; :mod:`~hedge.batch.scheduler` decides when a batch
runs (the cheapest price window that still meets its deadline); :mod:`~hedge.batch.capacity` keeps
batch lines to their share of each deployment; :mod:`~hedge.batch.worker` claims lines and serves
each through :class:`hedge.gateway.pipeline.Exchange`, so routing, failover, booking and the one
record per line are the pipeline's. Nothing here knows HTTP.
"""

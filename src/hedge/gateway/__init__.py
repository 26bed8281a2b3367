"""The gateway core: one request from plan to record, for every face that serves models.

- :mod:`hedge.gateway.pipeline`: :class:`~hedge.gateway.pipeline.Exchange`, the whole request
  (admission, plan, conformance gate, cache, failover, escalation, the one record).
- :mod:`hedge.gateway.attempt`: one attempt on one deployment (fit, translate, send, read or hold
  a stream until its first token).
- :mod:`hedge.gateway.stream`: a streamed answer that books and records itself at its end.
- :mod:`hedge.gateway.booking`: what an answer costs. :mod:`hedge.gateway.caching`: the response
  cache's policy.
- :mod:`hedge.gateway.runtime`: the composition root, everything a running gateway holds.
- :mod:`hedge.gateway.hooks`: the seam an experiment (above the gateway) splits an alias's
  traffic through.

It returns result objects, never HTTP responses: the faces (``hedge.api``, ``hedge.conformance``
...) render them. It imports neither starlette nor aiohttp.
"""

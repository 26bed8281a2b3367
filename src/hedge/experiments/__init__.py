"""Experimentation on live traffic: shadow copies to candidates, A/B splits with feedback, and
adaptive weights that move traffic to the cheapest arm that is not worse than control.

It sits between the faces and the gateway: it drives the pipeline (a shadow copy is an
:class:`~hedge.gateway.pipeline.Exchange`) and is the runtime's arm assigner
(:mod:`hedge.gateway.hooks`); the faces show its results (``/admin/experiments``, ``hedge
experiments``, the dashboard) and take feedback (``POST /v1/feedback``).

- :mod:`~hedge.experiments.service`: :class:`~hedge.experiments.service.Experiments`, one per runtime.
- :mod:`~hedge.experiments.shadow`: sampling, the daily cap, sending and grading copies.
- :mod:`~hedge.experiments.arms`: sticky assignment by hash. :mod:`~hedge.experiments.adaptive`:
  where the weights go next. :mod:`~hedge.experiments.stats`: intervals and tests.
- :mod:`~hedge.experiments.grading`: the one function shadow pairs are graded through.
"""

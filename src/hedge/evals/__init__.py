"""Offline evaluation: run a dataset on candidate models through the gateway, grade the answers and
find the cheapest candidate that meets a quality bar (``hedge eval``, ``hedge dataset export``)."""

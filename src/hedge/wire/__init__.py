"""Wire formats as bytes and shapes, with no behaviour: what both the adapters and the mocks may share.

The mocks are the adapters' independent witnesses, so they never import ``hedge.providers``;
the little they have in common with it (how an SSE event is framed) lives here, below both.
"""

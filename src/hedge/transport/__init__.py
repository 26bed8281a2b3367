"""HTTP to upstreams: the one seam between the gateway and the network.

- :mod:`~hedge.transport.client`: :class:`Transport` (send a provider request, get a
  :class:`Reply`) and the reply's reading.
- :mod:`~hedge.transport.http1`: the keep-alive HTTP/1.1 client underneath.
- :mod:`~hedge.transport.errors`: network failures as upstream errors, and whose fault they are.
"""

from hedge.transport.client import Reply, Transport, read_upstream
from hedge.transport.errors import network_error

__all__ = ["Reply", "Transport", "network_error", "read_upstream"]

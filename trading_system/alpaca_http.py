"""What every alpaca-py client of ``prep`` needs on its HTTP session (trading and market data alike).

alpaca-py sets no HTTP timeout (API-NOTES B1), so a request to a host that stopped answering
would wait forever: ``add_timeout`` gives every request of a client one.
"""

from __future__ import annotations

import functools
from typing import Any


def add_timeout(client: Any, connect_timeout: float, timeout: float) -> None:
    """Make every request of the alpaca-py ``client`` (``TradingClient``, ``StockHistoricalDataClient``)
    give up after ``connect_timeout`` seconds to connect and ``timeout`` seconds to answer.

    Wraps the client's ``requests`` session's ``request`` (alpaca-py 0.44 sends every call through it).
    """
    session = client._session
    session.request = functools.partial(session.request, timeout=(connect_timeout, timeout))

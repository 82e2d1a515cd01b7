"""Documents in, pages and searchable PDFs out: the untrusted-parsing half of a job, jailed by default.

``converters`` is the host side (:class:`JailedConverter`, :class:`InProcessConverter`, the jail
policy), ``wire`` the checked request/reply format, ``converter_role`` what runs inside the jail.
"""

from __future__ import annotations

from textlayer.conversion.converters import (
    DocumentConverter,
    InProcessConverter,
    JailedConverter,
    converter_policy,
    document_limits,
)

__all__ = ["DocumentConverter", "InProcessConverter", "JailedConverter", "converter_policy", "document_limits"]

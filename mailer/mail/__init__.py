"""Email messages: MIME structure and headers, the bytes on the wire, DKIM signing."""

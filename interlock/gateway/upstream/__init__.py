"""Transport to upstream providers: the lean HTTP/1.1 client, one client per backend, SSE framing, and the relays
that turn an upstream's stream into the client's."""

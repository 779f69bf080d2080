"""Transport to upstream providers: the lean HTTP/1.1 client, one client per backend, the redaction of the backend's
credential from everything an upstream sends, SSE framing and checks, and the relays that turn an upstream's stream
into the client's."""

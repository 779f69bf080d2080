"""The client side of the gateway: ASGI primitives, middleware, request deadlines and disconnects, the SSE writer."""

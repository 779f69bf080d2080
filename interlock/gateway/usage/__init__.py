"""Usage: what a request consumed and cost (``metering``), recorded per request, kept in a durable local spool and
sent to the control plane in batches."""

"""The gateway's link to its control plane: the HTTP client, the polled key snapshot, and the link that starts and
stops the snapshot poller and the usage pipeline together."""

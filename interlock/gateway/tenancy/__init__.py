"""Who is calling and what they may do: key authentication against the control plane's snapshot, the tenant's
policy, rate limits (in memory or Redis), budgets and concurrency caps."""

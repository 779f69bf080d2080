"""``interlock up``: the platform on one machine, from the same manifests a cluster takes."""

"""Fronts and hosts over HTTP: the remote backend, the host's API and node, the Redis registry."""

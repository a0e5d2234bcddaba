"""Autoscaling: a pure policy that turns a pool's signals into a desired size with a reason."""

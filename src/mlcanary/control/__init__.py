"""Rollouts: deployments, traffic assignment, gates, actions and their audit trail."""

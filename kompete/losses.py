"""Adversarial and reconstruction losses, registered by name in kompete.registry.LOSSES."""

"""GAN model families, registered by name in kompete.registry.MODELS."""
from kompete.models import cyclegan  # noqa: F401,E402  (registers "cyclegan")

"""GAN model families, registered by name in kompete.registry.MODELS."""

"""Ray actor shells: they hold state and receive messages; the logic lives in engine/."""

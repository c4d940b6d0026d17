"""The emitter's one error."""


class EmitError(Exception):
    """The spec cannot be emitted for the target (the message says why)."""

class ProtocolError(ValueError):
    """A request or a payload that breaks the wire contract; the message names the fix."""

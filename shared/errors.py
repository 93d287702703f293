"""The one error a rule raises when it refuses something: a code a machine can
branch on and a sentence a person can act on ("forbidden_flow": "source
`omgeving` may not use flow `collegebesluit`; its flows are ...")."""

__all__ = ["CodedError"]


class CodedError(ValueError):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __reduce__(self) -> tuple[type["CodedError"], tuple[str, str]]:
        """Picklable, so a refusal made in a worker process reaches the service as it was raised."""
        return (CodedError, (self.code, self.reason))

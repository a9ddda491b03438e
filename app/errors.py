"""Errors a caller caused, each with the HTTP status it answers with."""


class ClientError(Exception):
    status_code = 400

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotFound(ClientError):
    status_code = 404


class Unprocessable(ClientError):
    status_code = 422


class Conflict(ClientError):
    status_code = 409

"""What a failure means for whoever retries: a dependency (the database, the broker) that cannot be reached,
where waiting helps; or anything else, where trying again a few times is all that makes sense."""

from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.adapters.sealing import SecretKeyError


def is_unavailable(error: BaseException) -> bool:
    """The database or the broker could not be reached (or was restarting, or is out of connections), or
    the stored secrets cannot be opened with the configured key (until an operator sets the right one)."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout | OSError | KafkaError | SecretKeyError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated
